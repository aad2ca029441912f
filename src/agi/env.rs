//! The `agi_*` environment block Asterisk writes before the first command.
//!
//! Wire format (res_agi.c, `setup_env`): one `key: value\n` line per
//! variable, then one empty line. Values are raw bytes (a caller name may be
//! UTF-8 or anything a trunk delivers), so everything here works on `&[u8]`
//! and keeps the bytes as received.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::opt;
use nom::{IResult, Parser};

use super::io::{read_line_bounded, LineRead};

/// Longest accepted line, terminator included. Asterisk's own values are
/// bounded by channel field sizes far below this.
pub const MAX_LINE: usize = 8192;
/// Largest accepted block, all lines included.
pub const MAX_BLOCK: usize = 65536;

/// Why an environment block was refused. Every variant names the line (1-based)
/// or byte offset at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// Input ended before the empty line that closes the block.
    UnexpectedEof { line: usize, offset: usize },
    /// A line longer than [`MAX_LINE`].
    LineTooLong { line: usize, offset: usize },
    /// The block grew past [`MAX_BLOCK`].
    BlockTooLarge { offset: usize },
    /// A line that is not `key: value`.
    MissingColon { line: usize, offset: usize },
    /// A key that does not start with `agi_` or has bytes other than ASCII
    /// letters, digits and `_`. Every key Asterisk writes starts with
    /// `agi_`; anything else is a line that should not be there (such as the
    /// rest of a value that carried a line feed).
    BadKey { line: usize, offset: usize },
    /// A typed field (`agi_priority`, `agi_threadid`, ...) that is not a number,
    /// or an `agi_arg_N` out of sequence.
    BadValue { line: usize, key: String },
    /// The same key twice.
    DuplicateKey { line: usize, key: String },
    /// A key every supported Asterisk sends is missing (a block cut short
    /// by a line feed inside a value, or forged).
    MissingKey { key: &'static str },
    /// An `agi_arg_N` before a standard key: the arguments come last.
    ArgsTooEarly { line: usize },
    /// Lines shaped like environment lines follow the block's end: a value
    /// carried a line feed and cut the block (the rest is still on the pipe).
    CutShort,
    /// Reading the input failed.
    Io(String),
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::UnexpectedEof { line, offset } => write!(
                f,
                "AGI environment cut short: end of input at line {line} (byte {offset}) before the empty line"
            ),
            EnvError::LineTooLong { line, offset } => write!(
                f,
                "AGI environment line {line} (byte {offset}) is longer than {MAX_LINE} bytes"
            ),
            EnvError::BlockTooLarge { offset } => write!(
                f,
                "AGI environment larger than {MAX_BLOCK} bytes (at byte {offset})"
            ),
            EnvError::MissingColon { line, offset } => write!(
                f,
                "AGI environment line {line} (byte {offset}) is not 'key: value'"
            ),
            EnvError::BadKey { line, offset } => write!(
                f,
                "AGI environment line {line}: bad byte in key at byte {offset}"
            ),
            EnvError::BadValue { line, key } => {
                write!(f, "AGI environment line {line}: bad value for {key}")
            }
            EnvError::DuplicateKey { line, key } => {
                write!(f, "AGI environment line {line}: {key} given twice")
            }
            EnvError::MissingKey { key } => write!(
                f,
                "AGI environment has no {key}: cut short or forged (a value with a line feed?)"
            ),
            EnvError::ArgsTooEarly { line } => write!(
                f,
                "AGI environment line {line}: an argument before the standard keys (forged?)"
            ),
            EnvError::CutShort => write!(
                f,
                "AGI environment cut short: more environment lines follow its end (a value with a line feed?)"
            ),
            EnvError::Io(e) => write!(f, "reading the AGI environment: {e}"),
        }
    }
}

impl std::error::Error for EnvError {}

/// The parsed environment: every key in Asterisk's order, the common fields
/// typed, `agi_arg_N` by index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Env {
    entries: Vec<(String, Vec<u8>)>,
    args: Vec<Vec<u8>>,
    priority: Option<u32>,
    threadid: Option<i64>,
    callingpres: Option<i32>,
    callingani2: Option<i32>,
    callington: Option<i32>,
    callingtns: Option<i32>,
}

/// The keys every supported Asterisk (16 and later) sends, in its order,
/// before the arguments (res_agi.c, `setup_env`).
pub const STANDARD_KEYS: [&str; 20] = [
    "agi_request",
    "agi_channel",
    "agi_language",
    "agi_type",
    "agi_uniqueid",
    "agi_version",
    "agi_callerid",
    "agi_calleridname",
    "agi_callingpres",
    "agi_callingani2",
    "agi_callington",
    "agi_callingtns",
    "agi_dnid",
    "agi_rdnis",
    "agi_context",
    "agi_extension",
    "agi_priority",
    "agi_enhanced",
    "agi_accountcode",
    "agi_threadid",
];

/// True for a line shaped like an environment line: `agi_`, key bytes, `:`.
/// Replies (`200 result=1`, `520-...`, `HANGUP`) never are.
pub fn is_env_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"agi_") else {
        return false;
    };
    let key_len = rest.iter().take_while(|&&b| is_key_byte(b)).count();
    rest.get(key_len) == Some(&b':')
}

/// `agi_callerid`, `agi_calleridname`, `agi_dnid` and `agi_rdnis` carry this
/// literal when the channel has no value.
const UNKNOWN: &[u8] = b"unknown";

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// One `key: value` line without its `\n`: returns (key, value).
/// The single blank after the colon is the separator; anything after it,
/// including further blanks, belongs to the value.
fn kv_line(input: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    let (rest, key) = take_while1(is_key_byte).parse(input)?;
    let (rest, _) = tag(&b":"[..]).parse(rest)?;
    let (value, _) = opt(tag(&b" "[..])).parse(rest)?;
    let (_, value) = take_while(|_| true).parse(value)?;
    Ok((&[][..], (key, value)))
}

fn parse_num<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

impl Env {
    /// Reads one block from `reader`, bounded by [`MAX_LINE`] and
    /// [`MAX_BLOCK`], and parses it. Never reads past the closing empty
    /// line, so the replies that follow stay in `reader`.
    pub fn read_from<R: BufRead>(reader: &mut R) -> Result<Env, EnvError> {
        let mut block = Vec::new();
        let mut line_no = 0usize;
        loop {
            line_no += 1;
            let start = block.len();
            let budget = MAX_LINE.min(MAX_BLOCK.saturating_sub(start));
            match read_line_bounded(reader, budget, &mut block) {
                Ok(LineRead::Line) => {}
                Ok(LineRead::Eof) => {
                    return Err(EnvError::UnexpectedEof {
                        line: line_no,
                        offset: block.len(),
                    })
                }
                Ok(LineRead::TooLong) => {
                    return Err(if budget < MAX_LINE {
                        EnvError::BlockTooLarge {
                            offset: block.len(),
                        }
                    } else {
                        EnvError::LineTooLong {
                            line: line_no,
                            offset: start,
                        }
                    })
                }
                Err(e) => return Err(EnvError::Io(e.to_string())),
            }
            if block.len() - start == 1 {
                return Env::parse(&block);
            }
        }
    }

    /// Parses a complete block (all lines and the closing empty line).
    pub fn parse(block: &[u8]) -> Result<Env, EnvError> {
        if block.len() > MAX_BLOCK {
            return Err(EnvError::BlockTooLarge { offset: MAX_BLOCK });
        }
        let mut env = Env::default();
        let mut offset = 0usize;
        let mut line_no = 0usize;
        let mut rest = block;
        loop {
            line_no += 1;
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                return Err(EnvError::UnexpectedEof {
                    line: line_no,
                    offset: block.len(),
                });
            };
            if nl + 1 > MAX_LINE {
                return Err(EnvError::LineTooLong {
                    line: line_no,
                    offset,
                });
            }
            let (line, after) = (&rest[..nl], &rest[nl + 1..]);
            if line.is_empty() {
                return Ok(env);
            }
            let (key, value) = match kv_line(line) {
                Ok((_, kv)) => kv,
                Err(_) => {
                    let key_len = line.iter().take_while(|&&b| is_key_byte(b)).count();
                    return Err(if line.contains(&b':') {
                        EnvError::BadKey {
                            line: line_no,
                            offset: offset + key_len,
                        }
                    } else {
                        EnvError::MissingColon {
                            line: line_no,
                            offset,
                        }
                    });
                }
            };
            if !key.starts_with(b"agi_") {
                return Err(EnvError::BadKey {
                    line: line_no,
                    offset,
                });
            }
            // Keys are ASCII by construction of `kv_line`.
            let key = String::from_utf8_lossy(key).into_owned();
            env.add(line_no, key, value)?;
            offset += nl + 1;
            rest = after;
        }
    }

    fn add(&mut self, line: usize, key: String, value: &[u8]) -> Result<(), EnvError> {
        if self.entries.iter().any(|(k, _)| *k == key) {
            return Err(EnvError::DuplicateKey { line, key });
        }
        let bad = |key: &str| EnvError::BadValue {
            line,
            key: key.to_string(),
        };
        match key.as_str() {
            "agi_priority" => self.priority = Some(parse_num(value).ok_or_else(|| bad(&key))?),
            "agi_threadid" => self.threadid = Some(parse_num(value).ok_or_else(|| bad(&key))?),
            "agi_callingpres" => {
                self.callingpres = Some(parse_num(value).ok_or_else(|| bad(&key))?)
            }
            "agi_callingani2" => {
                self.callingani2 = Some(parse_num(value).ok_or_else(|| bad(&key))?)
            }
            "agi_callington" => self.callington = Some(parse_num(value).ok_or_else(|| bad(&key))?),
            "agi_callingtns" => self.callingtns = Some(parse_num(value).ok_or_else(|| bad(&key))?),
            k => {
                if let Some(n) = k.strip_prefix("agi_arg_") {
                    // Asterisk numbers arguments 1..N without gaps.
                    match n.parse::<usize>() {
                        Ok(i) if i == self.args.len() + 1 && !n.starts_with('0') => {
                            self.args.push(value.to_vec())
                        }
                        _ => return Err(bad(&key)),
                    }
                }
            }
        }
        self.entries.push((key, value.to_vec()));
        Ok(())
    }

    /// Checks that the block is whole as Asterisk writes it: every key of
    /// [`STANDARD_KEYS`] (each once, as [`Env::parse`] already refuses a
    /// key twice) and no argument before the last of them. A value carrying
    /// a line feed ends the block early and leaves keys out, or forges a
    /// tail of its own; either fails here or in
    /// [`crate::agi::Session::check_nothing_cut`].
    pub fn check_standard(&self) -> Result<(), EnvError> {
        let mut last_standard = 0;
        for key in STANDARD_KEYS {
            match self.entries.iter().position(|(k, _)| k == key) {
                Some(i) => last_standard = last_standard.max(i),
                None => return Err(EnvError::MissingKey { key }),
            }
        }
        if let Some(i) = self.entries[..last_standard]
            .iter()
            .position(|(k, _)| k.starts_with("agi_arg_"))
        {
            return Err(EnvError::ArgsTooEarly { line: i + 1 });
        }
        Ok(())
    }

    /// Every key and value, in the order received.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// The raw value of any key.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The value of any key as text; invalid UTF-8 becomes U+FFFD.
    pub fn get_lossy(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(String::from_utf8_lossy)
    }

    /// A value that may be the literal `unknown`, which means "no value".
    fn known(&self, key: &str) -> Option<&[u8]> {
        self.get(key).filter(|v| *v != UNKNOWN)
    }

    /// `agi_request`: the script name or FastAGI URL.
    pub fn request(&self) -> Option<&[u8]> {
        self.get("agi_request")
    }
    /// `agi_channel`.
    pub fn channel(&self) -> Option<&[u8]> {
        self.get("agi_channel")
    }
    /// `agi_uniqueid`.
    pub fn uniqueid(&self) -> Option<&[u8]> {
        self.get("agi_uniqueid")
    }
    /// `agi_callerid`; `None` when absent or `unknown`.
    pub fn callerid(&self) -> Option<&[u8]> {
        self.known("agi_callerid")
    }
    /// `agi_calleridname`; `None` when absent or `unknown`.
    pub fn calleridname(&self) -> Option<&[u8]> {
        self.known("agi_calleridname")
    }
    /// `agi_dnid`; `None` when absent or `unknown`.
    pub fn dnid(&self) -> Option<&[u8]> {
        self.known("agi_dnid")
    }
    /// `agi_rdnis`; `None` when absent or `unknown`.
    pub fn rdnis(&self) -> Option<&[u8]> {
        self.known("agi_rdnis")
    }
    /// `agi_context`.
    pub fn context(&self) -> Option<&[u8]> {
        self.get("agi_context")
    }
    /// `agi_extension`.
    pub fn extension(&self) -> Option<&[u8]> {
        self.get("agi_extension")
    }
    /// `agi_priority`.
    pub fn priority(&self) -> Option<u32> {
        self.priority
    }
    /// `agi_threadid` (a signed long in Asterisk).
    pub fn threadid(&self) -> Option<i64> {
        self.threadid
    }
    /// `agi_callingpres`.
    pub fn callingpres(&self) -> Option<i32> {
        self.callingpres
    }
    /// `agi_callingani2`.
    pub fn callingani2(&self) -> Option<i32> {
        self.callingani2
    }
    /// `agi_callington`.
    pub fn callington(&self) -> Option<i32> {
        self.callington
    }
    /// `agi_callingtns`.
    pub fn callingtns(&self) -> Option<i32> {
        self.callingtns
    }
    /// True when the block came over FastAGI (`agi_network: yes`).
    pub fn is_network(&self) -> bool {
        self.get("agi_network") == Some(b"yes")
    }
    /// `agi_arg_N` for N = 1, 2, ...; `arg(0)` is `None`.
    pub fn arg(&self, n: usize) -> Option<&[u8]> {
        n.checked_sub(1)
            .and_then(|i| self.args.get(i))
            .map(Vec::as_slice)
    }
    /// All arguments in order.
    pub fn args(&self) -> impl Iterator<Item = &[u8]> {
        self.args.iter().map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_keeps_extra_blanks_and_empty_values() {
        let env = Env::parse(b"agi_accountcode: \nagi_x:  two\nagi_y:\n\n").unwrap();
        assert_eq!(
            Env::parse(b"agi_callerid: 1\nApplication: System\n\n"),
            Err(EnvError::BadKey {
                line: 2,
                offset: 16
            })
        );
        assert_eq!(env.get("agi_accountcode"), Some(&b""[..]));
        assert_eq!(env.get("agi_x"), Some(&b" two"[..]));
        assert_eq!(env.get("agi_y"), Some(&b""[..]));
    }

    #[test]
    fn env_lines_are_told_from_replies() {
        for yes in [&b"agi_arg_1: 1"[..], b"agi_threadid:", b"agi_x: y\n"] {
            assert!(is_env_line(yes), "{yes:?}");
        }
        for no in [
            &b"200 result=1"[..],
            b"520-Invalid command syntax.  Proper usage follows:",
            b"HANGUP",
            b"agi_",
            b"agi_x y: z",
            b"xagi_arg_1: 1",
            b"",
        ] {
            assert!(!is_env_line(no), "{no:?}");
        }
    }

    #[test]
    fn negative_threadid() {
        let env = Env::parse(b"agi_threadid: -140617792300736\n\n").unwrap();
        assert_eq!(env.threadid(), Some(-140617792300736));
    }

    #[test]
    fn args_must_be_in_sequence() {
        assert_eq!(
            Env::parse(b"agi_arg_2: x\n\n"),
            Err(EnvError::BadValue {
                line: 1,
                key: "agi_arg_2".into()
            })
        );
    }
}
