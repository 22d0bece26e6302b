#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    udpchat_fuzz::packet_decoder(data);
});
