#![no_main]
//! See `agora_fuzz::bodies::sparql_params`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agora_fuzz::bodies::sparql_params(data));
