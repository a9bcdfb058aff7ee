#![no_main]
//! See `agora_fuzz::bodies::dcat_page`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agora_fuzz::bodies::dcat_page(data));
