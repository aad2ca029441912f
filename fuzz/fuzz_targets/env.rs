#![no_main]
//! The AGI environment block: parse from bytes and from a stream.
use agi_callback::agi::Env;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = Env::parse(data);
    let streamed = Env::read_from(&mut std::io::Cursor::new(data));
    // The stream reader stops at the first empty line; on a block that
    // parses, both must agree.
    if let Ok(env) = &parsed {
        if let Ok(s) = &streamed {
            assert_eq!(env, s);
        }
    }
});
