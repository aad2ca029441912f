//! One AGI conversation over any buffered reader and writer: stdin/stdout
//! for a process-per-call script, a socket for FastAGI, byte slices in tests.

use std::fmt;
use std::io::{self, BufRead, Write};

use super::command::{Command, CommandError};
use super::env::{is_env_line, Env, EnvError};
use super::io::{read_line_bounded, LineRead, Lookahead};
use super::reply::{parse_reply, Reply, ReplyError};

/// Largest reply accepted (a 520 usage block included).
pub const MAX_REPLY: usize = 65536;

/// Where the conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The environment block has not been read yet.
    New,
    /// Commands may be sent.
    Ready,
    /// The peer is gone or the stream is out of step; nothing more is sent.
    Closed,
}

/// Why a session step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The environment block was refused.
    Env(EnvError),
    /// The reply could not be parsed; the session is closed.
    Reply(ReplyError),
    /// A reply larger than [`MAX_REPLY`]; the session is closed.
    ReplyTooLarge,
    /// The peer closed the stream (EOF on read, EPIPE on write), or the
    /// session was already closed.
    Closed,
    /// `send` before `read_env`, or `read_env` twice.
    NotReady,
    /// The command could not be built.
    Command(CommandError),
    /// Any other I/O error; the session is closed.
    Io(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Env(e) => e.fmt(f),
            SessionError::Command(e) => e.fmt(f),
            SessionError::Reply(e) => e.fmt(f),
            SessionError::ReplyTooLarge => {
                write!(f, "AGI reply larger than {MAX_REPLY} bytes")
            }
            SessionError::Closed => write!(f, "AGI peer closed the connection"),
            SessionError::NotReady => write!(f, "AGI command sent before the environment was read"),
            SessionError::Io(e) => write!(f, "AGI I/O error: {e}"),
        }
    }
}

impl std::error::Error for SessionError {}

/// An AGI session: read the environment once, then one command and one
/// reply at a time.
pub struct Session<R, W> {
    reader: R,
    writer: W,
    state: State,
    hangup_seen: bool,
    last_raw: Vec<u8>,
}

impl<R: BufRead, W: Write> Session<R, W> {
    /// A new session over `reader` (what Asterisk writes) and `writer`
    /// (where commands go).
    pub fn new(reader: R, writer: W) -> Self {
        Session {
            reader,
            writer,
            state: State::New,
            hangup_seen: false,
            last_raw: Vec::new(),
        }
    }

    /// Where the conversation stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// True once a `HANGUP` event was read (FastAGI's hang-up notice).
    pub fn hangup_seen(&self) -> bool {
        self.hangup_seen
    }

    /// The bytes of the last reply read, events skipped on the way included.
    pub fn last_raw(&self) -> &[u8] {
        &self.last_raw
    }

    /// Reads and parses the environment block. On any error the session is
    /// closed.
    pub fn read_env(&mut self) -> Result<Env, SessionError> {
        if self.state != State::New {
            return Err(SessionError::NotReady);
        }
        match Env::read_from(&mut self.reader) {
            Ok(env) => {
                self.state = State::Ready;
                Ok(env)
            }
            Err(e) => {
                self.state = State::Closed;
                Err(SessionError::Env(e))
            }
        }
    }

    /// Sends `cmd`, flushes, and reads exactly one complete reply. `HANGUP`
    /// events and `100 Trying` lines before it are skipped (the former
    /// remembered). EOF or EPIPE close the session and return
    /// [`SessionError::Closed`]; after that nothing more is sent.
    pub fn send(&mut self, cmd: &Command) -> Result<Reply, SessionError> {
        match self.state {
            State::New => return Err(SessionError::NotReady),
            State::Closed => return Err(SessionError::Closed),
            State::Ready => {}
        }
        self.last_raw.clear();
        if let Err(e) = self.write_line(cmd.as_bytes()) {
            self.state = State::Closed;
            return Err(match e.kind() {
                io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::WriteZero => SessionError::Closed,
                _ => SessionError::Io(e.to_string()),
            });
        }
        loop {
            match self.read_reply() {
                Ok(Reply::Hangup) => self.hangup_seen = true,
                Ok(Reply::Trying(_)) => {}
                Ok(Reply::Eof) => {
                    self.state = State::Closed;
                    return Err(SessionError::Closed);
                }
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    self.state = State::Closed;
                    return Err(e);
                }
            }
        }
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        // One write for the whole line, so a reader never sees half a command.
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        self.writer.write_all(&buf)?;
        self.writer.flush()
    }

    /// Reads one reply or event; [`Reply::Eof`] at a clean end of input.
    fn read_reply(&mut self) -> Result<Reply, SessionError> {
        let start = self.last_raw.len();
        loop {
            let line_start = self.last_raw.len();
            let budget = MAX_REPLY.saturating_sub(self.last_raw.len());
            let read = read_line_bounded(&mut self.reader, budget, &mut self.last_raw)
                .map_err(|e| SessionError::Io(e.to_string()))?;
            match read {
                LineRead::Line => {}
                // A partial line at EOF is a peer that went away mid-reply.
                LineRead::Eof => return Ok(Reply::Eof),
                LineRead::TooLong => return Err(SessionError::ReplyTooLarge),
            }
            // Inside a `520-` usage block only its closing `520 ` line can
            // complete the reply: parse once then, not after every line
            // (which made a long block cost quadratic time).
            let reply = &self.last_raw[start..];
            if reply.starts_with(b"520-") && !self.last_raw[line_start..].starts_with(b"520 ") {
                continue;
            }
            match parse_reply(&self.last_raw[start..]) {
                Ok((reply, _)) => return Ok(reply),
                Err(ReplyError::Incomplete) => continue,
                Err(e) => return Err(SessionError::Reply(e)),
            }
        }
    }

    /// `SET VARIABLE`, true when Asterisk answered `200 result=1`.
    pub fn set_variable(&mut self, name: &[u8], value: &[u8]) -> Result<bool, SessionError> {
        let cmd = Command::set_variable(name, value).map_err(SessionError::Command)?;
        Ok(self.send(&cmd)?.result_code() == Some(1))
    }

    /// `GET VARIABLE`: the value when set, `None` when not set.
    pub fn get_variable(&mut self, name: &[u8]) -> Result<Option<Vec<u8>>, SessionError> {
        let cmd = Command::get_variable(name).map_err(SessionError::Command)?;
        match self.send(&cmd)? {
            Reply::Success { result, data, .. } if result == b"1" => {
                Ok(Some(data.unwrap_or_default()))
            }
            _ => Ok(None),
        }
    }

    /// Gives back the reader and writer.
    pub fn into_parts(self) -> (R, W) {
        (self.reader, self.writer)
    }
}

impl<R: Lookahead, W: Write> Session<R, W> {
    /// Looks, without blocking, at what the peer has already written past
    /// the environment block. Asterisk writes nothing after the block's
    /// empty line until it gets a command, so a line shaped like an
    /// environment line there proves a value carried a line feed and cut
    /// the block ([`EnvError::CutShort`]). Replies written ahead of time
    /// (tests, a hand-made transcript) pass.
    pub fn check_nothing_cut(&mut self) -> Result<(), SessionError> {
        let ahead = self
            .reader
            .ready()
            .map_err(|e| SessionError::Io(e.to_string()))?;
        if ahead.split(|&b| b == b'\n').any(is_env_line) {
            self.state = State::Closed;
            return Err(SessionError::Env(EnvError::CutShort));
        }
        Ok(())
    }
}
