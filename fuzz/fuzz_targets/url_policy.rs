#![no_main]
//! See `agora_fuzz::bodies::url_policy`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agora_fuzz::bodies::url_policy(data));
