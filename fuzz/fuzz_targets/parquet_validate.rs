#![no_main]
//! See `agora_fuzz::bodies::parquet_validate`. libfuzzer-sys's panic hook aborts on every panic, also one
//! that `decode_fully` catches; the quiet hook lets caught panics be verdicts, while a panic
//! that escapes still unwinds into libFuzzer and aborts (a finding).
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| agora_fuzz::bodies::parquet_validate(data)
);
