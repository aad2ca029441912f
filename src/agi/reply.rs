//! Replies Asterisk writes after each command, parsed from bytes.
//!
//! Forms (res_agi.c, Asterisk 16..23): `200 result=<token>[ (<data>)][ <rest>]`,
//! `100 result=0 Trying...` before GOSUB's final `200`, `510 Invalid or
//! unknown command`, `511 Command Not Permitted on a dead channel[ or
//! intercept routine]`, the usage error `520 ...` on one line or as a
//! `520-` ... `520 End of proper usage.` block, and the `HANGUP` line that
//! FastAGI interleaves as an event.

use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while_m_n};
use nom::combinator::{map_res, rest};
use nom::sequence::terminated;
use nom::{IResult, Parser};

/// One complete reply, or an event, or the end of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `200 result=<token> [(data)] [rest]`. `data` runs from the first `(` to
    /// the last `)` (Asterisk does not escape it).
    Success {
        result: Vec<u8>,
        data: Option<Vec<u8>>,
        rest: Vec<u8>,
    },
    /// `100 ...`: the command is running (GOSUB); the final reply follows.
    Trying(Vec<u8>),
    /// `510`: the command is not known.
    InvalidCommand,
    /// `511`: not permitted on a dead channel (the caller hung up).
    DeadChannel,
    /// `520`: usage error; the usage text lines when Asterisk gave them.
    Usage(Vec<Vec<u8>>),
    /// A `HANGUP` line (FastAGI's hang-up event).
    Hangup,
    /// Any other three-digit code, e.g. `503 result=-2 Memory allocation failure`.
    Other { code: u16, text: Vec<u8> },
    /// The peer closed the stream.
    Eof,
}

impl Reply {
    /// The `result=` token as a number, for `200` replies.
    pub fn result_code(&self) -> Option<i64> {
        match self {
            Reply::Success { result, .. } => std::str::from_utf8(result).ok()?.parse().ok(),
            _ => None,
        }
    }
}

/// Why bytes could not be read as a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// The buffer holds the start of a reply but not all of it.
    Incomplete,
    /// A line that is no reply; `offset` is where it starts in the buffer.
    Malformed { offset: usize, line: Vec<u8> },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Incomplete => write!(f, "incomplete AGI reply"),
            ReplyError::Malformed { offset, line } => write!(
                f,
                "malformed AGI reply at byte {offset}: {}",
                crate::escape_bytes(line)
            ),
        }
    }
}

impl std::error::Error for ReplyError {}

fn code(input: &[u8]) -> IResult<&[u8], u16> {
    map_res(
        take_while_m_n(3, 3, |b: u8| b.is_ascii_digit()),
        |d: &[u8]| {
            std::str::from_utf8(d)
                .map_err(|_| ())
                .and_then(|s| s.parse::<u16>().map_err(|_| ()))
        },
    )
    .parse(input)
}

/// A single line, without its `\n`.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Hangup,
    /// `NNN text`: a final line.
    Final(u16, &'a [u8]),
    /// `NNN-text`: a line that continues.
    Continued(u16, &'a [u8]),
}

fn line(input: &[u8]) -> IResult<&[u8], Line<'_>> {
    alt((
        terminated(tag(&b"HANGUP"[..]), nom::combinator::eof).map(|_| Line::Hangup),
        (code, tag(&b"-"[..]), rest).map(|(c, _, t)| Line::Continued(c, t)),
        (code, tag(&b" "[..]), rest).map(|(c, _, t)| Line::Final(c, t)),
        (code, nom::combinator::eof).map(|(c, _)| Line::Final(c, &b""[..])),
    ))
    .parse(input)
}

/// `result=<token>[ (<data>)][ <rest>]`, the text of a `200` line.
fn success(text: &[u8]) -> Option<Reply> {
    let (after, _) = tag::<_, _, nom::error::Error<&[u8]>>(&b"result="[..])
        .parse(text)
        .ok()?;
    let end = after.iter().position(|&b| b == b' ').unwrap_or(after.len());
    let (result, mut tail) = after.split_at(end);
    // GET DATA timing out before any digit: `200 result= (timeout)`
    if result.is_empty() && !tail.starts_with(b" (") {
        return None;
    }
    tail = tail.strip_prefix(b" ").unwrap_or(tail);
    let mut data = None;
    if tail.first() == Some(&b'(') {
        if let Some(close) = tail.iter().rposition(|&b| b == b')') {
            data = Some(tail[1..close].to_vec());
            tail = &tail[close + 1..];
            tail = tail.strip_prefix(b" ").unwrap_or(tail);
        }
    }
    Some(Reply::Success {
        result: result.to_vec(),
        data,
        rest: tail.to_vec(),
    })
}

/// Parses one complete reply at the start of `buf`. Returns the reply and
/// the number of bytes it used. An empty `buf` is [`ReplyError::Incomplete`];
/// the caller decides whether end of input means [`Reply::Eof`].
pub fn parse_reply(buf: &[u8]) -> Result<(Reply, usize), ReplyError> {
    let mut pos = 0usize;
    let mut usage: Option<Vec<Vec<u8>>> = None;
    loop {
        let rest_buf = buf.get(pos..).unwrap_or_default();
        let Some(nl) = rest_buf.iter().position(|&b| b == b'\n') else {
            return Err(ReplyError::Incomplete);
        };
        let text = &rest_buf[..nl];
        let start = pos;
        pos += nl + 1;
        if let Some(lines) = usage.as_mut() {
            // Inside a 520 block: everything up to the `520 ` line is usage text.
            if text.starts_with(b"520 ") {
                let lines = std::mem::take(lines);
                return Ok((Reply::Usage(lines), pos));
            }
            lines.push(text.to_vec());
            continue;
        }
        let malformed = || ReplyError::Malformed {
            offset: start,
            line: text.to_vec(),
        };
        let (_, parsed) = line(text).map_err(|_| malformed())?;
        let reply = match parsed {
            Line::Hangup => Reply::Hangup,
            Line::Continued(520, _) => {
                usage = Some(Vec::new());
                continue;
            }
            Line::Continued(..) => return Err(malformed()),
            Line::Final(200, t) => success(t).ok_or_else(malformed)?,
            Line::Final(100, t) => Reply::Trying(t.to_vec()),
            Line::Final(510, _) => Reply::InvalidCommand,
            Line::Final(511, _) => Reply::DeadChannel,
            Line::Final(520, _) => Reply::Usage(Vec::new()),
            Line::Final(code, t) => Reply::Other {
                code,
                text: t.to_vec(),
            },
        };
        return Ok((reply, pos));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &[u8]) -> Reply {
        let (r, n) = parse_reply(s).unwrap();
        assert_eq!(n, s.len());
        r
    }

    #[test]
    fn success_forms() {
        assert_eq!(one(b"200 result=1\n").result_code(), Some(1));
        // GET DATA: digits, digits cut by the timeout, none at all
        assert_eq!(one(b"200 result=4711\n").result_code(), Some(4711));
        assert_eq!(
            one(b"200 result=47 (timeout)\n"),
            Reply::Success {
                result: b"47".to_vec(),
                data: Some(b"timeout".to_vec()),
                rest: vec![],
            }
        );
        assert_eq!(
            one(b"200 result= (timeout)\n"),
            Reply::Success {
                result: vec![],
                data: Some(b"timeout".to_vec()),
                rest: vec![],
            }
        );
        assert_eq!(
            one(b"200 result=1 (a b)\n"),
            Reply::Success {
                result: b"1".to_vec(),
                data: Some(b"a b".to_vec()),
                rest: vec![]
            }
        );
        assert_eq!(
            one(b"200 result=-1 endpos=0\n"),
            Reply::Success {
                result: b"-1".to_vec(),
                data: None,
                rest: b"endpos=0".to_vec()
            }
        );
        // data runs to the LAST ')'
        assert_eq!(
            one(b"200 result=1 (x) y) endpos=5\n"),
            Reply::Success {
                result: b"1".to_vec(),
                data: Some(b"x) y".to_vec()),
                rest: b"endpos=5".to_vec()
            }
        );
    }

    #[test]
    fn errors_and_events() {
        assert_eq!(
            one(b"510 Invalid or unknown command\n"),
            Reply::InvalidCommand
        );
        assert_eq!(
            one(b"511 Command Not Permitted on a dead channel\n"),
            Reply::DeadChannel
        );
        assert_eq!(
            one(b"511 Command Not Permitted on a dead channel or intercept routine\n"),
            Reply::DeadChannel
        );
        assert_eq!(
            one(b"520 Invalid command syntax.  Proper usage not available.\n"),
            Reply::Usage(vec![])
        );
        assert_eq!(one(b"HANGUP\n"), Reply::Hangup);
        assert_eq!(
            one(b"100 result=0 Trying...\n"),
            Reply::Trying(b"result=0 Trying...".to_vec())
        );
        assert_eq!(
            one(b"503 result=-2 Memory allocation failure\n"),
            Reply::Other {
                code: 503,
                text: b"result=-2 Memory allocation failure".to_vec()
            }
        );
    }

    #[test]
    fn usage_block_needs_its_end() {
        let block = b"520-Invalid command syntax.  Proper usage follows:\nline one\n520 End of proper usage.\n";
        assert_eq!(
            parse_reply(&block[..block.len() - 5]),
            Err(ReplyError::Incomplete)
        );
        assert_eq!(one(block), Reply::Usage(vec![b"line one".to_vec()]));
    }

    #[test]
    fn malformed_lines() {
        for bad in [
            &b"hello\n"[..],
            b"200 noresult\n",
            b"200 result=\n",
            b"20 x\n",
            b"200-x\n",
        ] {
            assert!(
                matches!(
                    parse_reply(bad),
                    Err(ReplyError::Malformed { offset: 0, .. })
                ),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
