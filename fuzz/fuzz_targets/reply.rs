#![no_main]
//! The reply stream: the parser over arbitrary bytes, and a session that
//! sends commands and reads whatever comes back.
use agi_callback::agi::{parse_reply, Command, Session};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((_, used)) = parse_reply(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
    }
    let mut input = b"agi_request: fuzz\n\n".to_vec();
    input.extend_from_slice(data);
    let mut s = Session::new(std::io::Cursor::new(input), std::io::sink());
    if s.read_env().is_ok() {
        for _ in 0..16 {
            if s.send(&Command::noop()).is_err() {
                break;
            }
        }
    }
});
