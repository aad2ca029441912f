//! Building command lines. Every argument that can carry free text goes
//! through [`quote`], the one quoting function; words that must stay bare
//! (command verbs, variable names, application names) go through [`word`].
//!
//! Asterisk splits a command line on blanks; `"` toggles quoting and is
//! dropped; `\x` yields `x`. A CR, LF or NUL cannot be expressed at all, and
//! a line of 2048 bytes or more is cut in two by older releases, so both
//! are refused here rather than sent.

use std::fmt;

/// Longest command line accepted, `\n` included (the limit of Asterisk
/// releases before mid-2025; newer ones take 8192).
pub const MAX_COMMAND: usize = 2048;

/// Why a command could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// CR, LF or NUL inside an argument; `offset` is within that argument.
    ForbiddenByte { arg: usize, offset: usize, byte: u8 },
    /// A word that must be bare (verb, variable or application name) is
    /// empty or holds a blank, quote, backslash or control byte.
    BadWord { arg: usize },
    /// The line would be `len` bytes with its `\n`, over [`MAX_COMMAND`].
    TooLong { len: usize },
    /// An empty command line (Asterisk answers a blank line with an extra 510).
    Empty,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::ForbiddenByte { arg, offset, byte } => write!(
                f,
                "AGI command argument {arg}: byte 0x{byte:02x} at offset {offset} cannot be sent"
            ),
            CommandError::BadWord { arg } => write!(
                f,
                "AGI command argument {arg} must be a single word without quotes, backslashes or control bytes"
            ),
            CommandError::TooLong { len } => write!(
                f,
                "AGI command line of {len} bytes is over the {MAX_COMMAND}-byte limit"
            ),
            CommandError::Empty => write!(f, "empty AGI command"),
        }
    }
}

impl std::error::Error for CommandError {}

fn forbidden(b: u8) -> bool {
    matches!(b, b'\r' | b'\n' | 0)
}

/// Appends `arg` to `out` as one double-quoted word: `\` and `"` are
/// escaped; CR, LF and NUL are refused. `index` names the argument in errors.
pub fn quote(arg: &[u8], index: usize, out: &mut Vec<u8>) -> Result<(), CommandError> {
    if let Some(offset) = arg.iter().position(|&b| forbidden(b)) {
        return Err(CommandError::ForbiddenByte {
            arg: index,
            offset,
            byte: arg[offset],
        });
    }
    out.reserve(arg.len() + 2);
    out.push(b'"');
    for &b in arg {
        if b == b'\\' || b == b'"' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    Ok(())
}

/// Appends a bare word: non-empty, printable ASCII, no blank, quote or
/// backslash (so Asterisk reads it back unchanged without quoting).
pub fn word(w: &[u8], index: usize, out: &mut Vec<u8>) -> Result<(), CommandError> {
    if w.is_empty()
        || !w
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    {
        return Err(CommandError::BadWord { arg: index });
    }
    out.extend_from_slice(w);
    Ok(())
}

/// One command line, checked and ready to send (without its `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    line: Vec<u8>,
}

/// An argument for [`Command::build`].
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// Sent as-is; must be a bare word.
    Word(&'a [u8]),
    /// Sent quoted and escaped.
    Text(&'a [u8]),
}

impl Command {
    /// `verb` (one or more bare words separated by single spaces, e.g.
    /// `SET VARIABLE`) followed by `args`.
    pub fn build(verb: &str, args: &[Arg<'_>]) -> Result<Command, CommandError> {
        let mut line = Vec::with_capacity(64);
        for (i, w) in verb.split(' ').enumerate() {
            if i > 0 {
                line.push(b' ');
            }
            word(w.as_bytes(), 0, &mut line)?;
        }
        for (i, a) in args.iter().enumerate() {
            line.push(b' ');
            match *a {
                Arg::Word(w) => word(w, i + 1, &mut line)?,
                Arg::Text(t) => quote(t, i + 1, &mut line)?,
            }
        }
        Command::checked(line)
    }

    /// A line sent verbatim, for commands without a builder. Still refused
    /// when empty, over-long, or holding CR, LF or NUL.
    pub fn raw(line: &[u8]) -> Result<Command, CommandError> {
        if let Some(offset) = line.iter().position(|&b| forbidden(b)) {
            return Err(CommandError::ForbiddenByte {
                arg: 0,
                offset,
                byte: line[offset],
            });
        }
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(CommandError::Empty);
        }
        Command::checked(line.to_vec())
    }

    fn checked(line: Vec<u8>) -> Result<Command, CommandError> {
        if line.len() + 1 > MAX_COMMAND {
            return Err(CommandError::TooLong {
                len: line.len() + 1,
            });
        }
        Ok(Command { line })
    }

    /// The line without its `\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.line
    }

    /// `ANSWER`
    pub fn answer() -> Command {
        Command {
            line: b"ANSWER".to_vec(),
        }
    }
    /// `HANGUP`
    pub fn hangup() -> Command {
        Command {
            line: b"HANGUP".to_vec(),
        }
    }
    /// `NOOP`
    pub fn noop() -> Command {
        Command {
            line: b"NOOP".to_vec(),
        }
    }
    /// `VERBOSE "message" level` (level 1..=4 is what Asterisk shows).
    pub fn verbose(message: &[u8], level: u8) -> Result<Command, CommandError> {
        let level = level.clamp(1, 4).to_string();
        Command::build(
            "VERBOSE",
            &[Arg::Text(message), Arg::Word(level.as_bytes())],
        )
    }
    /// `SET VARIABLE name "value"`
    pub fn set_variable(name: &[u8], value: &[u8]) -> Result<Command, CommandError> {
        Command::build("SET VARIABLE", &[Arg::Word(name), Arg::Text(value)])
    }
    /// `GET VARIABLE name`
    pub fn get_variable(name: &[u8]) -> Result<Command, CommandError> {
        Command::build("GET VARIABLE", &[Arg::Word(name)])
    }
    /// `GET FULL VARIABLE "expression" [channel]`
    pub fn get_full_variable(
        expression: &[u8],
        channel: Option<&[u8]>,
    ) -> Result<Command, CommandError> {
        match channel {
            Some(c) => Command::build("GET FULL VARIABLE", &[Arg::Text(expression), Arg::Word(c)]),
            None => Command::build("GET FULL VARIABLE", &[Arg::Text(expression)]),
        }
    }
    /// `EXEC application "options"`
    pub fn exec(application: &[u8], options: &[u8]) -> Result<Command, CommandError> {
        Command::build("EXEC", &[Arg::Word(application), Arg::Text(options)])
    }
    /// `WAIT FOR DIGIT <ms>` (-1 waits forever)
    pub fn wait_for_digit(ms: i64) -> Command {
        let n = ms.to_string();
        // A number is always a valid word.
        Command::build("WAIT FOR DIGIT", &[Arg::Word(n.as_bytes())])
            .unwrap_or_else(|_| Command::noop())
    }
    /// `GET DATA "file" <timeout ms> <max digits>`: plays `file` and
    /// collects digits (`#` ends them early).
    pub fn get_data(
        file: &[u8],
        timeout_ms: u32,
        max_digits: u32,
    ) -> Result<Command, CommandError> {
        let (t, m) = (timeout_ms.to_string(), max_digits.to_string());
        Command::build(
            "GET DATA",
            &[
                Arg::Text(file),
                Arg::Word(t.as_bytes()),
                Arg::Word(m.as_bytes()),
            ],
        )
    }
    /// `SAY NUMBER <n> "escape_digits"`: Asterisk's own recordings.
    pub fn say_number(n: i64, escape_digits: &[u8]) -> Result<Command, CommandError> {
        let n = n.to_string();
        Command::build(
            "SAY NUMBER",
            &[Arg::Word(n.as_bytes()), Arg::Text(escape_digits)],
        )
    }
    /// `SAY ALPHA "text" "escape_digits"`: spelled letter by letter.
    pub fn say_alpha(text: &[u8], escape_digits: &[u8]) -> Result<Command, CommandError> {
        Command::build("SAY ALPHA", &[Arg::Text(text), Arg::Text(escape_digits)])
    }
    /// `STREAM FILE "file" "escape_digits"`
    pub fn stream_file(file: &[u8], escape_digits: &[u8]) -> Result<Command, CommandError> {
        Command::build("STREAM FILE", &[Arg::Text(file), Arg::Text(escape_digits)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_commands() {
        assert_eq!(
            Command::get_data(b"/var/lib/x/pin", 5000, 4)
                .unwrap()
                .as_bytes(),
            b"GET DATA \"/var/lib/x/pin\" 5000 4"
        );
        assert_eq!(
            Command::say_number(12, b"1#*09").unwrap().as_bytes(),
            b"SAY NUMBER 12 \"1#*09\""
        );
        assert_eq!(
            Command::say_alpha(b"ivan", b"1").unwrap().as_bytes(),
            b"SAY ALPHA \"ivan\" \"1\""
        );
    }

    #[test]
    fn matches_the_lines_asterisk_was_sent() {
        assert_eq!(
            Command::verbose(b"after wait", 1).unwrap().as_bytes(),
            b"VERBOSE \"after wait\" 1"
        );
        assert_eq!(
            Command::set_variable(b"CALLBACK_STATUS", b"QUEUED")
                .unwrap()
                .as_bytes(),
            b"SET VARIABLE CALLBACK_STATUS \"QUEUED\""
        );
        assert_eq!(
            Command::get_variable(b"X").unwrap().as_bytes(),
            b"GET VARIABLE X"
        );
    }

    #[test]
    fn escapes_and_refuses() {
        assert_eq!(
            Command::verbose(br#"a "b" \c"#, 1).unwrap().as_bytes(),
            br#"VERBOSE "a \"b\" \\c" 1"#
        );
        assert_eq!(
            Command::verbose(b"a\nb", 1),
            Err(CommandError::ForbiddenByte {
                arg: 1,
                offset: 1,
                byte: b'\n'
            })
        );
        assert_eq!(
            Command::set_variable(b"A B", b"x"),
            Err(CommandError::BadWord { arg: 1 })
        );
        assert!(matches!(
            Command::verbose(&[b'x'; 2040], 1),
            Err(CommandError::TooLong { .. })
        ));
        assert_eq!(Command::raw(b"  "), Err(CommandError::Empty));
        assert!(Command::raw(b"NOOP\r").is_err());
    }
}
