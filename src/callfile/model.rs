//! A call file as a typed value: what can be expressed, how it is written so
//! that Asterisk's spooler (pbx_spool.c) reads back exactly that, and how
//! pbx_spool reads any file.

use std::fmt;

/// Longest line pbx_spool reads, without its `\n`; longer lines are skipped.
pub const MAX_LINE: usize = 1022;
/// Bytes of a Callerid name (and of its number) that pbx_spool keeps: it
/// splits the value into two `char[80]` buffers (pbx_spool.c, `parse_line`).
pub const MAX_CALLERID_PART: usize = 79;

/// Upper bounds for the numeric fields (sane values an admin would use;
/// Asterisk itself reads them into a C int).
pub const MAX_RETRIES: u32 = 1000;
/// Longest `RetryTime`, one week.
pub const MAX_RETRY_TIME: u32 = 7 * 86400;
/// Longest `WaitTime`, one day.
pub const MAX_WAIT_TIME: u32 = 86400;
/// Highest dialplan priority accepted.
pub const MAX_PRIORITY: u32 = i32::MAX as u32;

/// `Callerid:` as name and number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallerId {
    pub name: Option<String>,
    pub number: Option<String>,
}

impl CallerId {
    /// Reads `"Name" <number>`, `Name <number>`, `<number>`, a bare number or
    /// a bare (optionally quoted) name, the forms Asterisk's
    /// `ast_callerid_parse` accepts.
    pub fn parse(s: &str) -> CallerId {
        let s = s.trim();
        let unquote = |n: &str| -> Option<String> {
            let n = n.trim();
            let n = n
                .strip_prefix('"')
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or(n)
                .trim();
            (!n.is_empty()).then(|| n.to_string())
        };
        if let Some(lt) = s.rfind('<') {
            if let Some(gt) = s[lt..].find('>') {
                let number = s[lt + 1..lt + gt].trim();
                return CallerId {
                    name: unquote(&s[..lt]),
                    number: (!number.is_empty()).then(|| number.to_string()),
                };
            }
        }
        if !s.starts_with('"') && !s.is_empty() && s.chars().all(is_number_char) {
            return CallerId {
                name: None,
                number: Some(s.to_string()),
            };
        }
        CallerId {
            name: unquote(s),
            number: None,
        }
    }

    fn render(&self) -> Result<String, Problem> {
        if let Some(n) = &self.name {
            if n.is_empty() || n.trim() != n {
                return Err(Problem::BadCallerId("name is empty or has outer blanks"));
            }
            if n.contains(['"', '<', '>', '\\']) {
                return Err(Problem::BadCallerId("name holds '\"', '<', '>' or '\\'"));
            }
            if n.len() > MAX_CALLERID_PART {
                return Err(Problem::BadCallerId(
                    "name is longer than the 79 bytes Asterisk keeps",
                ));
            }
        }
        if let Some(n) = &self.number {
            if n.is_empty() || !n.chars().all(is_number_char) {
                return Err(Problem::BadCallerId(
                    "number may hold only digits, '+', '*', '#' and '-'",
                ));
            }
            if n.len() > MAX_CALLERID_PART {
                return Err(Problem::BadCallerId(
                    "number is longer than the 79 bytes Asterisk keeps",
                ));
            }
        }
        Ok(match (&self.name, &self.number) {
            (Some(name), Some(num)) => format!("\"{name}\" <{num}>"),
            (Some(name), None) => format!("\"{name}\""),
            (None, Some(num)) => format!("<{num}>"),
            (None, None) => return Err(Problem::BadCallerId("neither name nor number")),
        })
    }
}

fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '*' | '#' | '-')
}

/// What happens once the call is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `Context`, `Extension`, `Priority`: continue in the dialplan.
    Extension {
        context: String,
        extension: String,
        priority: Option<u32>,
    },
    /// `Application`, `Data`: run one application.
    Application {
        application: String,
        data: Option<String>,
    },
}

/// Everything a call file can say. Fields left `None` are not written, and
/// Asterisk's default applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFile {
    /// `Tech/Dest`, e.g. `PJSIP/89161112233@sip-provider`.
    pub channel: String,
    pub callerid: Option<CallerId>,
    pub max_retries: Option<u32>,
    pub retry_time: Option<u32>,
    pub wait_time: Option<u32>,
    pub account: Option<String>,
    pub action: Action,
    /// `Set: NAME=value` lines, in order.
    pub variables: Vec<(String, String)>,
    pub archive: Option<bool>,
    pub always_delete: Option<bool>,
    pub codecs: Option<String>,
    pub early_media: Option<bool>,
}

impl CallFile {
    /// A call file with only a channel and an action.
    pub fn new(channel: impl Into<String>, action: Action) -> CallFile {
        CallFile {
            channel: channel.into(),
            callerid: None,
            max_retries: None,
            retry_time: None,
            wait_time: None,
            account: None,
            action,
            variables: Vec::new(),
            archive: None,
            always_delete: None,
            codecs: None,
            early_media: None,
        }
    }
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    Empty,
    /// A control byte (CR, LF, NUL, tab, ...) at this byte offset.
    ControlByte {
        offset: usize,
        byte: u8,
    },
    /// `;` would start a comment (only Data and Set values escape it).
    Semicolon {
        offset: usize,
    },
    /// `#` at the start or after a blank would start a comment.
    HashAfterBlank {
        offset: usize,
    },
    /// Leading or trailing blanks are stripped by Asterisk.
    OuterBlank,
    /// The whole line would be this long, over [`MAX_LINE`].
    LineTooLong {
        len: usize,
    },
    /// The channel is not `Tech/Dest` (or holds a blank).
    BadChannel,
    /// A variable name that is empty or holds `=`, a blank or a comment
    /// character.
    BadName,
    OutOfRange {
        value: u32,
        min: u32,
        max: u32,
    },
    BadCallerId(&'static str),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => write!(f, "is empty"),
            Problem::ControlByte { offset, byte } => {
                write!(f, "holds control byte 0x{byte:02x} at offset {offset}")
            }
            Problem::Semicolon { offset } => {
                write!(f, "holds ';' at offset {offset}, which Asterisk reads as a comment")
            }
            Problem::HashAfterBlank { offset } => write!(
                f,
                "holds '#' at offset {offset} at the start or after a blank, which Asterisk reads as a comment"
            ),
            Problem::OuterBlank => write!(f, "starts or ends with a blank, which Asterisk strips"),
            Problem::LineTooLong { len } => write!(
                f,
                "makes a line of {len} bytes; Asterisk skips lines over {MAX_LINE}"
            ),
            Problem::BadChannel => write!(f, "is not Tech/Dest without blanks"),
            Problem::BadName => write!(
                f,
                "is not a variable name (letters, digits, '_', or a function like CDR(userfield))"
            ),
            Problem::OutOfRange { value, min, max } => {
                write!(f, "{value} is outside {min}..={max}")
            }
            Problem::BadCallerId(why) => write!(f, "is not a caller ID: {why}"),
        }
    }
}

/// A field that [`CallFile::render`] refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderError {
    /// The call-file key, e.g. `Callerid` or `Set`.
    pub field: String,
    pub problem: Problem,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call file field {}: value {}", self.field, self.problem)
    }
}

impl std::error::Error for RenderError {}

/// Checks a value for the rules every key shares; with `escape_semicolon`,
/// `;` is written as `\;` (pbx_spool turns `\;` back into `;` on every line;
/// we rely on that only for Data and Set values, the free-text fields).
fn clean_value(value: &str, allow_empty: bool, escape_semicolon: bool) -> Result<String, Problem> {
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return if allow_empty {
            Ok(String::new())
        } else {
            Err(Problem::Empty)
        };
    }
    if let Some(offset) = bytes.iter().position(|&b| b < 0x20 || b == 0x7f) {
        return Err(Problem::ControlByte {
            offset,
            byte: bytes[offset],
        });
    }
    if bytes[0] == b' ' || bytes[bytes.len() - 1] == b' ' {
        return Err(Problem::OuterBlank);
    }
    // The value follows "Key: ", so a leading '#' comes after a blank too.
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] == b' ') {
            return Err(Problem::HashAfterBlank { offset: i });
        }
    }
    match value.find(';') {
        Some(offset) if !escape_semicolon => Err(Problem::Semicolon { offset }),
        Some(_) => Ok(value.replace(';', "\\;")),
        None => Ok(value.to_string()),
    }
}

fn valid_channel(c: &str) -> bool {
    match c.split_once('/') {
        Some((tech, dest)) => {
            !tech.is_empty()
                && tech
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && !dest.is_empty()
                && !dest.bytes().any(|b| b == b' ')
        }
        None => false,
    }
}

/// A name Asterisk's `Set:` splits correctly at its first `=`: `NAME`,
/// `_NAME`, `__NAME`, or a function call such as `CDR(userfield)`.
pub fn valid_variable_name(n: &str) -> bool {
    let (base, rest) = match n.find('(') {
        Some(i) => (&n[..i], Some(&n[i..])),
        None => (n, None),
    };
    let base_ok = !base.is_empty()
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    let rest_ok = match rest {
        None => true,
        Some(r) => {
            r.len() >= 2
                && r.ends_with(')')
                && r.bytes().all(|b| {
                    b.is_ascii_graphic() && !matches!(b, b'=' | b';' | b'#' | b'"' | b'\\')
                })
        }
    };
    base_ok && rest_ok
}

fn range(value: u32, min: u32, max: u32) -> Result<u32, Problem> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Problem::OutOfRange { value, min, max })
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

impl CallFile {
    /// Writes the file. Refuses, naming the field, any value Asterisk would
    /// read differently from what it says here: control bytes, `;` (escaped
    /// as `\;` in Data and Set values), `#` at the start or after a blank,
    /// outer blanks, lines over [`MAX_LINE`], a channel without `Tech/Dest`,
    /// a bad Set name, numbers out of range.
    pub fn render(&self) -> Result<String, RenderError> {
        let mut out = String::with_capacity(256);
        let mut line = |field: &str, value: Result<String, Problem>| -> Result<(), RenderError> {
            let err = |problem| RenderError {
                field: field.to_string(),
                problem,
            };
            let value = value.map_err(err)?;
            let len = field.len() + 2 + value.len();
            if len > MAX_LINE {
                return Err(err(Problem::LineTooLong { len }));
            }
            out.push_str(field);
            out.push_str(": ");
            out.push_str(&value);
            out.push('\n');
            Ok(())
        };
        let text = |v: &str| clean_value(v, false, false);
        let num = |v: u32, min, max| range(v, min, max).map(|n| n.to_string());

        line(
            "Channel",
            text(&self.channel).and_then(|c| {
                if valid_channel(&c) {
                    Ok(c)
                } else {
                    Err(Problem::BadChannel)
                }
            }),
        )?;
        if let Some(cid) = &self.callerid {
            line("Callerid", cid.render().and_then(|c| text(&c)))?;
        }
        if let Some(n) = self.max_retries {
            line("MaxRetries", num(n, 0, MAX_RETRIES))?;
        }
        if let Some(n) = self.retry_time {
            line("RetryTime", num(n, 1, MAX_RETRY_TIME))?;
        }
        if let Some(n) = self.wait_time {
            line("WaitTime", num(n, 1, MAX_WAIT_TIME))?;
        }
        if let Some(a) = &self.account {
            line("Account", text(a))?;
        }
        match &self.action {
            Action::Extension {
                context,
                extension,
                priority,
            } => {
                line("Context", text(context))?;
                line("Extension", text(extension))?;
                if let Some(p) = priority {
                    line("Priority", num(*p, 1, MAX_PRIORITY))?;
                }
            }
            Action::Application { application, data } => {
                line("Application", text(application))?;
                if let Some(d) = data {
                    line("Data", clean_value(d, true, true))?;
                }
            }
        }
        for (name, value) in &self.variables {
            let v = if valid_variable_name(name) {
                clean_value(value, true, true).map(|v| format!("{name}={v}"))
            } else {
                Err(Problem::BadName)
            };
            line("Set", v)?;
        }
        if let Some(c) = &self.codecs {
            line("Codecs", text(c))?;
        }
        if let Some(b) = self.always_delete {
            line("AlwaysDelete", Ok(yes_no(b).into()))?;
        }
        if let Some(b) = self.archive {
            line("Archive", Ok(yes_no(b).into()))?;
        }
        if let Some(b) = self.early_media {
            line("early_media", Ok(yes_no(b).into()))?;
        }
        Ok(out)
    }
}
