//! Bounded line reading: the one place that pulls bytes off the AGI pipe.

use std::io::{self, BufRead};

/// What [`read_line_bounded`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// A whole line, `\n` included, was appended.
    Line,
    /// End of input; whatever partial line there was has been appended.
    Eof,
    /// `max` bytes were appended without finding `\n`; the rest of the line
    /// is left unread.
    TooLong,
}

/// Appends one line (up to and including `\n`) to `out`, reading at most
/// `max` bytes. Never blocks once the reader reports end of input, never
/// grows `out` by more than `max`.
pub fn read_line_bounded<R: BufRead>(
    reader: &mut R,
    max: usize,
    out: &mut Vec<u8>,
) -> io::Result<LineRead> {
    let mut taken = 0usize;
    loop {
        let buf = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok(LineRead::Eof);
        }
        let room = max - taken;
        let window = &buf[..buf.len().min(room)];
        if let Some(i) = window.iter().position(|&b| b == b'\n') {
            out.extend_from_slice(&window[..=i]);
            reader.consume(i + 1);
            return Ok(LineRead::Line);
        }
        let n = window.len();
        out.extend_from_slice(window);
        reader.consume(n);
        taken += n;
        if taken >= max {
            return Ok(LineRead::TooLong);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_limit() {
        let mut r = io::Cursor::new(vec![b'a'; 100]);
        let mut out = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, 10, &mut out).unwrap(),
            LineRead::TooLong
        );
        assert_eq!(out.len(), 10);
    }

    #[test]
    fn line_then_eof() {
        let mut r = io::Cursor::new(b"ab\ncd".to_vec());
        let mut out = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, 10, &mut out).unwrap(),
            LineRead::Line
        );
        assert_eq!(out, b"ab\n");
        assert_eq!(
            read_line_bounded(&mut r, 10, &mut out).unwrap(),
            LineRead::Eof
        );
        assert_eq!(out, b"ab\ncd");
    }
}
