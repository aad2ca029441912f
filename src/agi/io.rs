//! Bounded line reading: the one place that pulls bytes off the AGI pipe.

use std::io::{self, BufRead, Read};
use std::os::fd::{AsFd, BorrowedFd};

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

/// A reader that can show, without blocking, what its source already holds
/// beyond what was consumed.
pub trait Lookahead: BufRead {
    /// Takes in whatever the source has ready without blocking (up to the
    /// buffer's capacity) and returns every byte buffered and not consumed.
    fn ready(&mut self) -> io::Result<&[u8]>;
}

/// Everything in a slice is ready.
impl Lookahead for &[u8] {
    fn ready(&mut self) -> io::Result<&[u8]> {
        Ok(self)
    }
}

impl<T: AsRef<[u8]>> Lookahead for io::Cursor<T> {
    fn ready(&mut self) -> io::Result<&[u8]> {
        let all = self.get_ref().as_ref();
        let pos = (self.position() as usize).min(all.len());
        Ok(&all[pos..])
    }
}

/// A source that cannot be polled: only what is buffered is known.
impl<R: Read> Lookahead for io::BufReader<R> {
    fn ready(&mut self) -> io::Result<&[u8]> {
        Ok(self.buffer())
    }
}

/// A buffered reader over a pipe or socket descriptor (the AGI's stdin)
/// that can poll it for bytes already written.
pub struct FdReader<F: AsFd = BorrowedFd<'static>> {
    fd: F,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl FdReader {
    /// The process's standard input.
    pub fn stdin() -> FdReader {
        FdReader::new(rustix::stdio::stdin(), 128 * 1024)
    }
}

impl<F: AsFd> FdReader<F> {
    /// Reads from `fd` with a buffer of `capacity`.
    pub fn new(fd: F, capacity: usize) -> FdReader<F> {
        FdReader {
            fd,
            buf: vec![0; capacity.max(1)],
            pos: 0,
            end: 0,
        }
    }

    fn read_some(&mut self) -> io::Result<usize> {
        loop {
            match rustix::io::read(&self.fd, &mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn readable_now(&self) -> io::Result<bool> {
        use rustix::event::{PollFd, PollFlags};
        let mut p = [PollFd::new(&self.fd, PollFlags::IN)];
        let ready = rustix::event::poll(&mut p, Some(&rustix::event::Timespec::default()))?;
        Ok(ready > 0 && p[0].revents().intersects(PollFlags::IN | PollFlags::HUP))
    }
}

impl<F: AsFd> Read for FdReader<F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<F: AsFd> BufRead for FdReader<F> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
            self.read_some()?;
        }
        Ok(&self.buf[self.pos..self.end])
    }
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

impl<F: AsFd> Lookahead for FdReader<F> {
    fn ready(&mut self) -> io::Result<&[u8]> {
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < self.buf.len() && self.readable_now()? {
            if self.read_some()? == 0 {
                break; // end of input
            }
        }
        Ok(&self.buf[..self.end])
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
    fn fd_reader_sees_what_the_pipe_holds_without_blocking() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        let mut w = std::fs::File::from(w);
        use std::io::Write;
        w.write_all(b"a: 1\n\nrest\n").unwrap();
        let mut rd = FdReader::new(&r, 4);
        let mut line = Vec::new();
        assert_eq!(
            read_line_bounded(&mut rd, 100, &mut line).unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"a: 1\n");
        // the buffer is 4 bytes: ready() shows what fits, never blocks
        assert_eq!(rd.ready().unwrap(), b"\nres");
        line.clear();
        assert_eq!(
            read_line_bounded(&mut rd, 100, &mut line).unwrap(),
            LineRead::Line
        );
        assert_eq!(line, b"\n");
        assert_eq!(rd.ready().unwrap(), b"rest");
        let mut all = String::new();
        drop(w);
        rd.read_to_string(&mut all).unwrap();
        assert_eq!(all, "rest\n");
        assert_eq!(rd.ready().unwrap(), b"");
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
