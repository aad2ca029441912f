#![no_main]
//! pbx_spool's reader over arbitrary bytes; whatever it reads as a call
//! must render to a file that reads back the same, or be refused.
use agi_callback::callfile::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let p = parse(data);
    if let Some(call) = p.call {
        if let Ok(text) = call.render() {
            let again = parse(text.as_bytes());
            assert_eq!(again.call, Some(call), "{text}");
        }
    }
});
