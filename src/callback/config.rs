//! The callback configuration: JSON, strict (unknown keys are errors),
//! defaults from Asterisk's environment.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::valid_number;
use crate::paths;

/// Largest config file read.
const MAX_CONFIG: u64 = 1 << 20;

/// A prefix rule bringing caller IDs to the permit list's form (shared
/// with the alert line: [`crate::number`]).
pub use crate::number::Rewrite;

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

pub use crate::error::ConfigError;

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
        // Never blocks: a FIFO or other non-regular file is refused at once.
        let buf = crate::fsio::read_bounded(path, MAX_CONFIG).map_err(err)?;
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
        crate::number::check_rules("rewrite", &raw.rewrite)?;
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
        super::build_call(&cfg, "89105647899")
            .render()
            .map_err(|e| format!("call: {e}"))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
