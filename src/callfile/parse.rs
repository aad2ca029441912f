//! Reading a call file the way pbx_spool.c does, with a diagnostic for
//! every place where Asterisk would ignore, truncate or default something.

use std::fmt;

use super::model::{valid_variable_name, Action, CallFile, CallerId, MAX_CALLERID_PART, MAX_LINE};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Asterisk reads the file, but maybe not as its author thought.
    Warning,
    /// Asterisk would delete the file or misread a value.
    Error,
}

/// One finding, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "line {}: {sev}: {}", self.line, self.message)
    }
}

/// A call file as Asterisk reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The call, when Asterisk would place it (a channel and an action).
    pub call: Option<CallFile>,
    /// Attempts already made: `Retry`, `EndRetry` and `AbortRetry` lines.
    pub attempts: u32,
    /// A `StartRetry` without a later `EndRetry`/`AbortRetry`: an attempt is
    /// under way (or its Asterisk died).
    pub in_progress: bool,
    pub diagnostics: Vec<Diagnostic>,
}

impl Parsed {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Keys that people write but pbx_spool does not know, with the key meant.
const LOOKALIKES: &[(&str, &str)] = &[
    ("earlymedia", "early_media"),
    ("callerid_name", "Callerid"),
    ("timeout", "WaitTime"),
    ("maxlen", ""),
    ("predialcallee", ""),
    ("predialcaller", ""),
];

/// `%d` as sscanf reads it: optional blanks and sign, then digits; the rest
/// ignored. Returns the number and whether anything followed it.
fn scan_int(s: &str) -> Option<(i64, bool)> {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let v: i64 = digits[..n].parse().ok()?;
    Some((if neg { -v } else { v }, n < digits.len()))
}

/// Asterisk's `ast_true`.
fn ast_true(s: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|t| s.eq_ignore_ascii_case(t))
}

struct Lines<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.bytes.is_empty() {
            return None;
        }
        let end = self
            .bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.bytes.len(), |i| i + 1);
        let (line, rest) = self.bytes.split_at(end);
        self.bytes = rest;
        Some(line)
    }
}

/// Applies pbx_spool's comment rules to one line (without `\n`): `#` at the
/// start or after a blank ends the line; `;` ends it unless written `\;`,
/// which becomes `;`. Returns the remaining text and where a comment cut it
/// (an offset in the original line), if one did.
fn strip_comments(line: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut buf = line.to_vec();
    let mut cut = None;
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'#') {
        let c = i + p;
        if c == 0 || buf[c - 1] == b' ' || buf[c - 1] == b'\t' {
            buf.truncate(c);
            cut = Some(c);
            break;
        }
        i = c + 1;
    }
    // The same walk as pbx_spool in Asterisk 22: `\;` becomes `;` and the
    // search goes on with the very next byte, so `a\;;b` is `a;` (older
    // releases skipped a byte there).
    let mut i = 0;
    let mut removed = 0;
    while let Some(p) = buf.get(i..).and_then(|s| s.iter().position(|&b| b == b';')) {
        let c = i + p;
        if c > 0 && buf[c - 1] == b'\\' {
            buf.remove(c - 1);
            removed += 1;
            i = c;
        } else {
            buf.truncate(c);
            cut = Some(c + removed);
            break;
        }
    }
    (buf, cut)
}

/// Reads `bytes` as pbx_spool would. Never fails: what Asterisk would
/// ignore, default or refuse is reported in [`Parsed::diagnostics`].
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut diags = Vec::new();
    let mut diag = |line: usize, severity, message: String| {
        diags.push(Diagnostic {
            line,
            severity,
            message,
        })
    };
    let mut channel: Option<(usize, String)> = None;
    let mut callerid = None;
    let mut max_retries = None;
    let mut retry_time = None;
    let mut wait_time = None;
    let mut account = None;
    let mut context: Option<String> = None;
    let mut extension: Option<(usize, String)> = None;
    let mut priority = None;
    let mut application: Option<(usize, String)> = None;
    let mut data = None;
    let mut variables = Vec::new();
    let mut archive = None;
    let mut always_delete = None;
    let mut codecs = None;
    let mut early_media = None;
    let mut attempts = 0u32;
    let mut in_progress: Option<usize> = None;
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut bad_channel = false;

    let mut lines = (Lines { bytes }).enumerate();
    while let Some((idx, raw)) = lines.next() {
        let n = idx + 1;
        let mut line = raw.strip_suffix(b"\n").unwrap_or(raw);
        if line.len() > MAX_LINE {
            diag(
                n,
                Severity::Error,
                format!(
                    "line is {} bytes; Asterisk skips lines over {MAX_LINE} bytes whole",
                    line.len()
                ),
            );
            continue;
        }
        if let Some(z) = memchr::memchr(0, line) {
            if !raw.ends_with(b"\n") {
                // The last line, at end of file: read up to the NUL.
                diag(
                    n,
                    Severity::Error,
                    format!(
                        "a NUL byte at column {}: Asterisk reads the line only up to it",
                        z + 1
                    ),
                );
                line = &line[..z];
            } else {
                // fgets() reads the whole line, strlen() stops at the NUL, so
                // pbx_spool sees a line without its line feed: "extremely
                // long", skipped, and the next line read as its tail.
                let mut swallowed = Vec::new();
                for (j, next) in lines.by_ref() {
                    swallowed.push((j + 1, next));
                    let next_line = next.strip_suffix(b"\n").unwrap_or(next);
                    let again = next.ends_with(b"\n")
                        && next_line.len() <= MAX_LINE
                        && memchr::memchr(0, next_line).is_some();
                    if !again {
                        break;
                    }
                }
                let which = match swallowed.as_slice() {
                    [] => String::new(),
                    [(m, _)] => format!(", and line {m} with it as its tail"),
                    [(a, _), .., (b, _)] => format!(", and lines {a} to {b} with it as its tail"),
                };
                diag(
                    n,
                    Severity::Error,
                    format!(
                        "a NUL byte at column {}: Asterisk stops reading the line there, takes it for an over-long line and skips it{which}",
                        z + 1
                    ),
                );
                for (m, next) in swallowed {
                    let key = next.split(|&b| b == b':').next().unwrap_or_default();
                    let key = crate::escape_bytes(&key[..key.len().min(40)]);
                    diag(
                        m,
                        Severity::Error,
                        format!("skipped by Asterisk as the tail of line {n} (which holds a NUL byte): this {key:?} line is never read"),
                    );
                }
                continue;
            }
        }
        let (text, cut) = strip_comments(line);
        // ast_trim_blanks: trailing bytes below 33.
        let end = text.iter().rposition(|&b| b >= 33).map_or(0, |i| i + 1);
        let text = &text[..end];
        if text.is_empty() {
            continue;
        }
        let text = match std::str::from_utf8(text) {
            Ok(t) => t.to_string(),
            Err(_) => {
                diag(
                    n,
                    Severity::Warning,
                    "line is not valid UTF-8; shown with replacement characters".into(),
                );
                String::from_utf8_lossy(text).into_owned()
            }
        };
        if let Some(at) = cut {
            diag(
                n,
                Severity::Error,
                format!(
                    "a comment character at column {} cuts the value; Asterisk reads only {:?}",
                    at + 1,
                    text
                ),
            );
        }
        let Some((key, value)) = text.split_once(':') else {
            diag(
                n,
                Severity::Error,
                "line has no ':'; Asterisk ignores it".into(),
            );
            continue;
        };
        // ast_skip_blanks: leading bytes below 33.
        let value = value
            .trim_start_matches(|c: char| (c as u32) < 33)
            .to_string();
        let lkey = key.to_ascii_lowercase();
        if key.trim() != key || key.contains([' ', '\t']) {
            diag(
                n,
                Severity::Error,
                format!("key {key:?} has blanks; Asterisk ignores the line"),
            );
            continue;
        }
        // A Channel line without '/' is ignored by Asterisk (the one
        // before stays), so it does not "win".
        let ignored_channel = lkey == "channel" && !value.contains('/');
        let single = !matches!(
            lkey.as_str(),
            "set" | "setvar" | "retry" | "startretry" | "endretry" | "abortretry" | "delayedretry"
        ) && !ignored_channel;
        if single {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == lkey) {
                diag(
                    n,
                    Severity::Warning,
                    format!("{key} also given at line {first}; this line wins"),
                );
            }
            seen.push((lkey.clone(), n));
        }
        let int = |what: &str,
                   diag: &mut dyn FnMut(usize, Severity, String),
                   min: i64,
                   dflt: &str| {
            match scan_int(&value) {
                Some((v, trailing)) if v >= min && v <= i64::from(i32::MAX) => {
                    if trailing {
                        diag(
                            n,
                            Severity::Warning,
                            format!("{what}: text after the number {v} is ignored"),
                        );
                    }
                    u32::try_from(v).ok()
                }
                Some((v, _)) if v < min && v >= i64::from(i32::MIN) => {
                    diag(
                            n,
                            Severity::Error,
                            format!("{what} {v} is below {min}: Asterisk logs it as invalid and uses {dflt}"),
                        );
                    None
                }
                _ => {
                    diag(
                        n,
                        Severity::Error,
                        format!("{what} {value:?} is not a valid number; Asterisk uses {dflt}"),
                    );
                    None
                }
            }
        };
        match lkey.as_str() {
            "channel" => match value.split_once('/') {
                // pbx_spool splits at the first '/' and keeps both parts,
                // even empty ones (then the file is invalid).
                Some((tech, _)) => {
                    if ["sip", "zap"].contains(&tech.to_ascii_lowercase().as_str()) {
                        diag(
                            n,
                            Severity::Warning,
                            format!(
                                "Asterisk 22 has no {tech}/ channels ({}): the call fails when dialled and is retried until MaxRetries runs out; use PJSIP/ (or DAHDI/)",
                                if tech.eq_ignore_ascii_case("sip") {
                                    "chan_sip was removed in 21"
                                } else {
                                    "Zap was renamed DAHDI"
                                }
                            ),
                        );
                    }
                    channel = Some((n, value));
                }
                None => match &channel {
                    Some((first, _)) => diag(
                        n,
                        Severity::Warning,
                        format!(
                            "Channel {value:?} is not Tech/Dest; Asterisk ignores this line and keeps the Channel of line {first}"
                        ),
                    ),
                    None => {
                        diag(
                            n,
                            Severity::Error,
                            format!("Channel {value:?} is not Tech/Dest; Asterisk ignores this line"),
                        );
                        bad_channel = true;
                    }
                },
            },
            "callerid" => {
                let cid = CallerId::parse(&value);
                for (part, text) in [("name", &cid.name), ("number", &cid.number)] {
                    if let Some(t) = text.as_deref().filter(|t| t.len() > MAX_CALLERID_PART) {
                        let kept = String::from_utf8_lossy(&t.as_bytes()[..MAX_CALLERID_PART]);
                        diag(
                            n,
                            Severity::Warning,
                            format!(
                                "Callerid {part} is {} bytes; Asterisk keeps {MAX_CALLERID_PART}: {kept:?}",
                                t.len()
                            ),
                        );
                    }
                }
                callerid = Some(cid);
            }
            "application" => application = Some((n, value)),
            "data" => data = Some(value),
            "maxretries" => match scan_int(&value) {
                Some((v, _)) if v < 0 => {
                    diag(
                        n,
                        Severity::Error,
                        format!(
                            "MaxRetries {v} is negative: Asterisk takes it as given and deletes the file as expired without ever dialling"
                        ),
                    );
                    max_retries = None;
                }
                _ => max_retries = int("MaxRetries", &mut diag, 0, "0"),
            },
            "retrytime" => retry_time = int("RetryTime", &mut diag, 1, "300"),
            "waittime" => wait_time = int("WaitTime", &mut diag, 1, "45"),
            "priority" => priority = int("Priority", &mut diag, 1, "1"),
            "context" => context = Some(value),
            "extension" => extension = Some((n, value)),
            "account" => account = Some(value),
            "codecs" => codecs = Some(value),
            "alwaysdelete" => always_delete = Some(ast_true(&value)),
            "archive" => archive = Some(ast_true(&value)),
            "early_media" => early_media = Some(ast_true(&value)),
            "set" | "setvar" => match value.split_once('=') {
                Some((name, v)) => {
                    if !valid_variable_name(name) {
                        diag(
                            n,
                            Severity::Warning,
                            format!("Set: {name:?} is an unusual variable name"),
                        );
                    }
                    variables.push((name.to_string(), v.to_string()));
                }
                None => diag(
                    n,
                    Severity::Error,
                    format!("{key}: {value:?} has no '='; Asterisk ignores it"),
                ),
            },
            "retry" | "endretry" | "abortretry" => {
                attempts += 1;
                in_progress = None;
            }
            "startretry" => in_progress = Some(n),
            "delayedretry" => {}
            "status" => diag(
                n,
                Severity::Warning,
                "Status is what Asterisk appends when it archives a file; \
                 if the file is queued again, Asterisk ignores it"
                    .into(),
            ),
            other => {
                let hint = LOOKALIKES
                    .iter()
                    .find(|(k, _)| *k == other)
                    .map(|(_, meant)| {
                        if meant.is_empty() {
                            " (not a call-file key)".to_string()
                        } else {
                            format!(" (did you mean {meant}?)")
                        }
                    })
                    .unwrap_or_default();
                diag(
                    n,
                    Severity::Warning,
                    format!("unknown key {key:?}{hint}; Asterisk ignores it"),
                );
            }
        }
    }

    let action = match (&application, &extension) {
        (Some((_, app)), ext) => {
            if let Some((n, _)) = ext {
                diag(
                    *n,
                    Severity::Warning,
                    "both Application and Extension given; Application wins".into(),
                );
            }
            Some(Action::Application {
                application: app.clone(),
                data: data.clone(),
            })
        }
        (None, Some((n, ext))) => match &context {
            Some(ctx) => {
                if priority.is_none() {
                    diag(*n, Severity::Warning, "no Priority: Asterisk uses 1".into());
                }
                Some(Action::Extension {
                    context: ctx.clone(),
                    extension: ext.clone(),
                    priority,
                })
            }
            None => {
                diag(
                    *n,
                    Severity::Warning,
                    "Extension without Context: the answered call runs in the channel's own context (usually \"default\")".into(),
                );
                Some(Action::Extension {
                    context: String::new(),
                    extension: ext.clone(),
                    priority,
                })
            }
        },
        (None, None) => {
            diag(
                1,
                Severity::Error,
                "neither Application nor Extension; Asterisk deletes the file".into(),
            );
            None
        }
    };
    if let Some(at) = in_progress {
        diag(
            at,
            Severity::Warning,
            "StartRetry without a later EndRetry: an attempt under way, or a file copied back from outgoing_done/; \
             the same running Asterisk never dials such a file (it takes the pid for its own attempt and only pushes the schedule on)"
                .into(),
        );
    }
    let channel = match channel {
        Some((n, c))
            if c.split_once('/')
                .is_some_and(|(t, d)| t.is_empty() || d.is_empty()) =>
        {
            diag(
                n,
                Severity::Error,
                format!("Channel {c:?} has an empty Tech or Dest; Asterisk deletes the file"),
            );
            None
        }
        Some((_, c)) => Some(c),
        None => {
            if !bad_channel {
                diag(
                    1,
                    Severity::Error,
                    "no Channel; Asterisk deletes the file".into(),
                );
            }
            None
        }
    };
    let call = match (channel, action) {
        (Some(channel), Some(action)) => Some(CallFile {
            channel,
            callerid,
            max_retries,
            retry_time,
            wait_time,
            account,
            action,
            variables,
            archive,
            always_delete,
            codecs,
            early_media,
        }),
        _ => None,
    };
    diags.sort_by_key(|d| d.line);
    Parsed {
        call,
        attempts,
        in_progress: in_progress.is_some(),
        diagnostics: diags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_rules() {
        assert_eq!(
            strip_comments(b"Callerid: Room #5 <100>").0,
            b"Callerid: Room "
        );
        assert_eq!(strip_comments(b"Data: a#b").0, b"Data: a#b");
        assert_eq!(strip_comments(b"Data: a\\;b;c").0, b"Data: a;b");
        assert_eq!(strip_comments(b"Data: a\\;b;c").1, Some(10));
        assert_eq!(strip_comments(b"; whole").0, b"");
    }

    #[test]
    fn scan_int_like_sscanf() {
        assert_eq!(scan_int(" 42"), Some((42, false)));
        assert_eq!(scan_int("5abc"), Some((5, true)));
        assert_eq!(scan_int("-3"), Some((-3, false)));
        assert_eq!(scan_int("x"), None);
    }
}
