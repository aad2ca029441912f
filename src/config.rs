//! The callback configuration: JSON, strict (unknown keys are errors),
//! defaults from Asterisk's environment.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::callback::valid_number;
use crate::paths;

/// Largest config file read.
const MAX_CONFIG: u64 = 1 << 20;
/// Largest permit_file read (several million numbers).
const MAX_PERMIT_FILE: u64 = 64 << 20;
/// The permit_file is read in chunks of this size; a longer line is an error.
const PERMIT_CHUNK: usize = 64 * 1024;

/// A prefix rule bringing caller IDs to the permit list's form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    pub prefix: String,
    pub replace: String,
    /// Apply only when the number has exactly this many digits.
    #[serde(default)]
    pub digits: Option<usize>,
}

/// What the queued call file says; `{number}` in the templates is the
/// permitted number.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallTemplate {
    pub channel: String,
    #[serde(default)]
    pub callerid: Option<String>,
    pub context: String,
    #[serde(default = "default_extension")]
    pub extension: String,
    #[serde(default = "default_priority")]
    pub priority: u32,
    #[serde(default)]
    pub max_retries: Option<u32>,
    #[serde(default)]
    pub retry_time: Option<u32>,
    #[serde(default)]
    pub wait_time: Option<u32>,
    #[serde(default)]
    pub account: Option<String>,
    /// Channel variables (name -> template), written in the order given.
    #[serde(default, deserialize_with = "ordered_map")]
    pub variables: Vec<(String, String)>,
    #[serde(default)]
    pub archive: Option<bool>,
}

fn default_extension() -> String {
    "s".into()
}
fn default_priority() -> u32 {
    1
}
fn default_max_pending() -> usize {
    50
}

/// A JSON object read as ordered pairs (serde_json's map would sort them).
fn ordered_map<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of variable name to value template")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some((k, v)) = m.next_entry::<String, String>()? {
                out.push((k, v));
            }
            Ok(out)
        }
    }
    d.deserialize_map(V)
}

/// The whole file as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    permit: Vec<String>,
    #[serde(default)]
    permit_file: Option<PathBuf>,
    #[serde(default)]
    rewrite: Vec<Rewrite>,
    call: CallTemplate,
    #[serde(default)]
    delay_seconds: u32,
    #[serde(default)]
    cooldown_seconds: u32,
    #[serde(default = "default_max_pending")]
    max_pending: usize,
    #[serde(default)]
    spool_dir: Option<PathBuf>,
    #[serde(default)]
    log_file: Option<PathBuf>,
    #[serde(default)]
    debug: bool,
}

/// A checked configuration with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub permit: Vec<String>,
    pub permit_file: Option<PathBuf>,
    pub rewrite: Vec<Rewrite>,
    pub call: CallTemplate,
    pub delay_seconds: u32,
    pub cooldown_seconds: u32,
    pub max_pending: usize,
    pub spool_dir: PathBuf,
    pub log_file: PathBuf,
    pub debug: bool,
}

/// A config problem, naming the file and what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `$CALLBACK_CONFIG`, else `$AST_CONFIG_DIR/callback.json`, else
/// `/etc/asterisk/callback.json`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("CALLBACK_CONFIG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => paths::config_dir().join("callback.json"),
    }
}

/// The default log file: `$AST_LOG_DIR/callback.log`.
pub fn default_log_file() -> PathBuf {
    paths::log_dir().join("callback.log")
}

/// Checks a template: `{number}` is the only placeholder.
fn check_template(field: &str, t: &str) -> Result<(), String> {
    let stripped = t.replace("{number}", "");
    if stripped.contains(['{', '}']) {
        return Err(format!(
            "{field}: {t:?} has a placeholder other than {{number}}"
        ));
    }
    Ok(())
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let f = File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let size = f.metadata().map_or(0, |m| m.len()).min(MAX_CONFIG) as usize;
        let mut buf = Vec::with_capacity(size + 1);
        f.take(MAX_CONFIG + 1)
            .read_to_end(&mut buf)
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if buf.len() as u64 > MAX_CONFIG {
            return Err(err(format!("larger than {MAX_CONFIG} bytes")));
        }
        Config::from_json(&buf).map_err(err)
    }

    /// Parses and checks JSON text. The error text names the key or the
    /// line and column.
    pub fn from_json(json: &[u8]) -> Result<Config, String> {
        let raw: Raw = serde_json::from_slice(json).map_err(|e| format!("invalid config: {e}"))?;
        for (i, p) in raw.permit.iter().enumerate() {
            if !valid_number(p.as_bytes()) {
                return Err(format!(
                    "permit[{i}]: {p:?} is not a number (ASCII digits, optional leading '+')"
                ));
            }
        }
        for (i, r) in raw.rewrite.iter().enumerate() {
            let ok_prefix = !r.prefix.is_empty() && valid_number(r.prefix.as_bytes());
            let ok_replace = r.replace.is_empty() || valid_number(r.replace.as_bytes());
            if !ok_prefix || !ok_replace {
                return Err(format!(
                    "rewrite[{i}]: prefix and replace must be digits with an optional leading '+' (prefix not empty)"
                ));
            }
            if r.digits
                .is_some_and(|d| d == 0 || d > crate::callback::MAX_DIGITS)
            {
                return Err(format!(
                    "rewrite[{i}].digits must be 1..={}",
                    crate::callback::MAX_DIGITS
                ));
            }
        }
        let c = &raw.call;
        check_template("call.channel", &c.channel)?;
        check_template("call.context", &c.context)?;
        check_template("call.extension", &c.extension)?;
        for (name, v) in &c.variables {
            check_template(&format!("call.variables.{name}"), v)?;
        }
        let cfg = Config {
            permit: raw.permit,
            permit_file: raw.permit_file,
            rewrite: raw.rewrite,
            call: raw.call,
            delay_seconds: raw.delay_seconds,
            cooldown_seconds: raw.cooldown_seconds,
            max_pending: raw.max_pending,
            spool_dir: raw.spool_dir.unwrap_or_else(paths::spool_dir),
            log_file: raw.log_file.unwrap_or_else(default_log_file),
            debug: raw.debug,
        };
        // A sample number must give a call file Asterisk reads as meant, so
        // a bad template fails here, at load, not on a caller's dime.
        crate::callback::build_call(&cfg, "89105647899")
            .render()
            .map_err(|e| format!("call: {e}"))?;
        Ok(cfg)
    }

    /// Is `number` (normalized) on the permit list or in `permit_file`?
    /// The whole file is read and checked each time, so a bad line is
    /// reported whatever number is asked for.
    pub fn is_permitted(&self, number: &str) -> Result<bool, ConfigError> {
        let mut found = self.permit.iter().any(|p| p == number);
        let Some(path) = &self.permit_file else {
            return Ok(found);
        };
        let err = |message: String| ConfigError {
            path: path.clone(),
            message,
        };
        // Read in fixed chunks of whole lines into one small buffer that
        // stays in cache: a 100,000-line list (1.3 MB) costs no more memory
        // than a short one, and no page faults for a big buffer.
        let mut f = File::open(path).map_err(|e| err(format!("cannot open permit_file: {e}")))?;
        let want = number.as_bytes();
        let mut buf = vec![0u8; PERMIT_CHUNK];
        let mut carry = 0usize; // start of a line left from the last chunk
        let mut line_base = 1usize; // number of the first line in `buf`
        let mut total = 0u64;
        loop {
            let n = loop {
                match f.read(&mut buf[carry..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(err(format!("cannot read permit_file: {e}"))),
                }
            };
            total += n as u64;
            if total > MAX_PERMIT_FILE {
                return Err(err(format!(
                    "permit_file is larger than {MAX_PERMIT_FILE} bytes"
                )));
            }
            if n == 0 {
                found |= scan_lines(&buf[..carry], want, line_base).map_err(err)?;
                return Ok(found);
            }
            let filled = carry + n;
            match memchr::memrchr(b'\n', &buf[..filled]) {
                Some(last) => {
                    let lines = &buf[..=last];
                    found |= scan_lines(lines, want, line_base).map_err(err)?;
                    line_base += lines.iter().filter(|&&b| b == b'\n').count();
                    buf.copy_within(last + 1..filled, 0);
                    carry = filled - last - 1;
                }
                None if filled == buf.len() => {
                    return Err(err(format!(
                        "line {line_base}: longer than {PERMIT_CHUNK} bytes"
                    )))
                }
                None => carry = filled,
            }
        }
    }
}

/// Looks for `want` in whole lines of a permit file; `first_line` numbers
/// the first of them, for the error naming a line that is not a number.
fn scan_lines(text: &[u8], want: &[u8], first_line: usize) -> Result<bool, String> {
    if let Some(hit) = scan_plain_list(text, want) {
        return Ok(hit);
    }
    let mut found = false;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let content = match memchr::memchr(b'#', line) {
            Some(c) => &line[..c],
            None => line,
        };
        let entry = content.trim_ascii();
        if entry.is_empty() {
            continue;
        }
        // Digits of any length are well-formed; one longer than a number
        // can be simply never matches, as in the fast path.
        let digits = entry.strip_prefix(b"+").unwrap_or(entry);
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(format!(
                "line {}: {:?} is not a number",
                first_line + i,
                String::from_utf8_lossy(&entry[..entry.len().min(64)])
            ));
        }
        found |= entry == want;
    }
    Ok(found)
}

/// The fast path for a list that is nothing but digits and line feeds (as
/// machine-kept lists are): one vectorised pass checks every byte, a
/// substring search finds the number on a line of its own. `None` when the
/// list has anything else (comments, blanks, `+`), for the line-by-line
/// reader.
fn scan_plain_list(text: &[u8], want: &[u8]) -> Option<bool> {
    // No early exit, so the compiler can vectorise it.
    let bad = text.iter().fold(0u8, |acc, &b| {
        acc | (u8::from(b.wrapping_sub(b'0') > 9) & u8::from(b != b'\n'))
    });
    let plain = bad == 0;
    if !plain || !want.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hit = memchr::memmem::find_iter(text, want).any(|at| {
        let before = at == 0 || text[at - 1] == b'\n';
        let end = at + want.len();
        let after = end == text.len() || text[end] == b'\n';
        before && after
    });
    Some(hit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn plain_lists_take_the_fast_path_and_agree_with_the_slow_one() {
        let list = b"89105647899\n123\n\n89100000000";
        assert_eq!(scan_plain_list(list, b"89105647899"), Some(true));
        assert_eq!(scan_plain_list(list, b"89100000000"), Some(true));
        assert_eq!(scan_plain_list(list, b"12"), Some(false));
        assert_eq!(scan_plain_list(list, b"23"), Some(false));
        assert_eq!(scan_plain_list(list, b"8910564789"), Some(false));
        // a line longer than any number never matches; it is no error
        assert_eq!(
            scan_plain_list(b"1\n123456789012345678901\n", b"1"),
            Some(true)
        );
        assert_eq!(scan_plain_list(b"1 # x\n", b"1"), None);
        assert_eq!(scan_plain_list(b"+1\n", b"1"), None);
        assert_eq!(scan_plain_list(b"1\n", b"+1"), None);
    }

    fn with_permit_file(file: &std::path::Path) -> Config {
        Config::from_json(
            format!(
                r#"{{"permit_file": "{}", "call": {{"channel": "PJSIP/x", "context": "c"}}}}"#,
                file.display()
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn permit_file_paths_agree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("permit.txt");
        let cfg = with_permit_file(&file);
        // plain (fast path) and commented (line by line): same answers
        for text in [
            "89105647899\n1234567890123456789012345\n",
            "# list\n 89105647899 # Ivan\n1234567890123456789012345\n+79105640000\n",
        ] {
            fs::write(&file, text).unwrap();
            assert!(cfg.is_permitted("89105647899").unwrap(), "{text}");
            assert!(!cfg.is_permitted("8910564789").unwrap(), "{text}");
        }
        fs::write(&file, "89105647899\n8910 564\n").unwrap();
        let e = cfg.is_permitted("89105647899").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("permit.txt"), "{e}");
    }

    #[test]
    fn permit_file_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("permit.txt");
        let cfg = with_permit_file(&file);
        // 20,000 lines of 12 bytes: 240 KB, several chunks; every number
        // that straddles a chunk edge must still be found whole
        let lines: Vec<String> = (0..20_000).map(|i| format!("8916{i:07}")).collect();
        for (text, commented) in [(lines.join("\n"), false), (lines.join(" # x\n"), true)] {
            fs::write(&file, &text).unwrap();
            for i in [0usize, 5461, 5462, 10922, 10923, 16383, 19_999] {
                assert!(cfg.is_permitted(&lines[i]).unwrap(), "{i} {commented}");
            }
            assert!(!cfg.is_permitted("89160020000").unwrap());
            // a cut-off piece of a number is not the number
            assert!(!cfg.is_permitted("6000546").unwrap());
        }
        let mut bad = lines.clone();
        bad[14_999] = "8916 bad".into();
        fs::write(&file, bad.join("\n")).unwrap();
        let e = cfg.is_permitted("89160000000").unwrap_err().to_string();
        assert!(e.contains("line 15000: \"8916 bad\""), "{e}");
        fs::write(&file, "1\n".to_string() + &"9".repeat(70_000)).unwrap();
        let e = cfg.is_permitted("1").unwrap_err().to_string();
        assert!(e.contains("line 2: longer than"), "{e}");
    }

    const MIN: &str = r#"{"call": {"channel": "PJSIP/{number}@sip-provider", "context": "outgoing_to_{number}"}}"#;

    #[test]
    fn defaults() {
        let c = Config::from_json(MIN.as_bytes()).unwrap();
        assert_eq!(c.call.extension, "s");
        assert_eq!(c.call.priority, 1);
        assert_eq!(c.max_pending, 50);
        assert_eq!(c.delay_seconds, 0);
        assert!(!c.debug);
    }

    #[test]
    fn unknown_keys_and_bad_templates_fail() {
        let e = Config::from_json(
            br#"{"call": {"channel": "PJSIP/x", "context": "c"}, "permitt": []}"#,
        )
        .unwrap_err();
        assert!(e.contains("unknown field `permitt`"), "{e}");
        let e = Config::from_json(br#"{"call": {"channel": "PJSIP/{num}", "context": "c"}}"#)
            .unwrap_err();
        assert!(e.contains("call.channel"), "{e}");
        let e =
            Config::from_json(br#"{"call": {"channel": "PJSIP", "context": "c"}}"#).unwrap_err();
        assert!(e.contains("Channel"), "{e}");
        let e = Config::from_json(
            br#"{"permit": ["12a"], "call": {"channel": "PJSIP/x", "context": "c"}}"#,
        )
        .unwrap_err();
        assert!(e.contains("permit[0]"), "{e}");
    }

    #[test]
    fn variables_keep_their_order() {
        let c = Config::from_json(
            br#"{"call": {"channel": "PJSIP/x", "context": "c", "variables": {"Z": "1", "A": "{number}"}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.call.variables,
            vec![("Z".into(), "1".into()), ("A".into(), "{number}".into())]
        );
    }
}
