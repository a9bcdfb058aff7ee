#![no_main]
//! See `agora_fuzz::bodies::sparql_request`.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agora_fuzz::bodies::sparql_request(data));
