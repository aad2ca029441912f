//! Callback and auto-dial for Asterisk: the AGI protocol, call files and
//! their spool, and the callback policy. The binaries `callback` and
//! `autodial` are thin shells over this library.

pub mod agi;
pub mod alert;
pub mod callback;
pub mod callfile;
pub mod error;
pub mod fsio;
pub mod heartbeat;
pub mod line;
pub mod logging;
pub mod number;
pub mod oncall;
pub mod paths;
pub mod receiver;
pub mod schedule;
pub mod speech;
pub mod timefmt;

/// An error and its sources, `a: b: c`, each said once (a source whose
/// text its parent already ends with is not repeated).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.ends_with(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// Renders bytes for logs and messages: valid UTF-8 text as-is, `\\`
/// doubled, control characters and invalid bytes as `\xNN` (or `\u{..}`),
/// so nothing is dropped and nothing controls a terminal or splits a log line.
/// Line and paragraph separators and invisible format characters (bidi
/// overrides and isolates, zero-width characters, the BOM, tags) are
/// escaped too: they can make a log line read backwards or hide text.
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
                c if c.is_control() || is_format(c) => {
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

/// Unicode's line and paragraph separators and its format characters
/// (general category Cf) that a terminal or log viewer acts on invisibly.
fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x08E2
        | 0x180E
        | 0x200B..=0x200F
        | 0x2028..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0001
        | 0xE0020..=0xE007F)
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
        // separators, bidi overrides and isolates, zero-width, BOM
        assert_eq!(
            super::escape_bytes(
                "a\u{2028}b\u{2029}\u{202e}gnp.exe\u{2066}\u{2069}\u{200b}\u{feff}\u{e0041}"
                    .as_bytes()
            ),
            "a\\u{2028}b\\u{2029}\\u{202e}gnp.exe\\u{2066}\\u{2069}\\u{200b}\\u{feff}\\u{e0041}"
        );
        // ordinary letters of other scripts stay
        assert_eq!(
            super::escape_bytes("Иван 李 عربي".as_bytes()),
            "Иван 李 عربي"
        );
    }
}
