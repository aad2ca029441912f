//! Callback and auto-dial for Asterisk: the AGI protocol, call files and
//! their spool, and the callback policy. The binaries `callback` and
//! `autodial` are thin shells over this library.

pub mod agi;
pub mod callback;
pub mod callfile;
pub mod fsio;
pub mod paths;
pub mod schedule;

/// Renders bytes for logs and messages: valid UTF-8 text as-is, `\\`
/// doubled, control characters and invalid bytes as `\xNN` (or `\u{..}`),
/// so nothing is dropped and nothing controls a terminal or splits a log line.
pub fn escape_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if c.is_ascii_control() => {
                    let _ = write!(s, "\\x{:02x}", c as u32);
                }
                c if c.is_control() => {
                    let _ = write!(s, "\\u{{{:x}}}", c as u32);
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_bytes_keeps_text_and_escapes_the_rest() {
        assert_eq!(
            super::escape_bytes("Иван a\\b\n\r\0".as_bytes()),
            "Иван a\\\\b\\x0a\\x0d\\x00"
        );
        assert_eq!(
            super::escape_bytes(b"\xff\x7f\xc2\x85"),
            "\\xff\\x7f\\u{85}"
        );
    }
}
