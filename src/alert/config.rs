//! `alerts.json`: who is called, how, in what order, and how the alert is
//! spoken. Strict: unknown keys are errors naming the key; every reference
//! (a contact in a chain, a chain in a route) is checked at load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::callfile::{Action, CallFile, CallerId};
use crate::oncall::config::ScheduleCfg;
use crate::oncall::Schedule;
use crate::paths;

/// Largest config read.
const MAX_CONFIG: u64 = 1 << 20;
/// Most rounds a chain may repeat (a typo guard: each round is calls).
pub const MAX_REPEAT: u32 = 20;

/// How the calls are placed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallCfg {
    /// Template; `{number}` is the contact's number.
    pub channel: String,
    #[serde(default)]
    pub callerid: Option<String>,
    /// Seconds to ring (Asterisk's default 45).
    #[serde(default)]
    pub wait_time: Option<u32>,
    #[serde(default = "default_context")]
    pub context: String,
    #[serde(default)]
    pub account: Option<String>,
}

fn default_context() -> String {
    "autodial-alert".into()
}

/// A person (or phone) to call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contact {
    pub number: String,
    /// Language of the spoken message (a key of `speech.voices`).
    #[serde(default)]
    pub language: Option<String>,
    /// Other numbers the person calls the alert line from (desk, mobile).
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Asked on the alert line when set (4-8 digits).
    #[serde(default)]
    pub pin: Option<String>,
}

/// The keys of the alert line (one key each: 0-9, `*`, `#`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineKeys {
    /// Acknowledge the alert being heard (default: `ack_digit`).
    #[serde(default)]
    pub ack: Option<String>,
    #[serde(default = "key_next")]
    pub next: String,
    #[serde(default = "key_repeat")]
    pub repeat: String,
    /// Who is on call now, per schedule.
    #[serde(default = "key_oncall")]
    pub oncall: String,
    /// Go on with the acknowledged alerts after the firing ones.
    #[serde(default = "key_acked_too")]
    pub acked_too: String,
}

fn key_next() -> String {
    "#".into()
}
fn key_repeat() -> String {
    "*".into()
}
fn key_oncall() -> String {
    "0".into()
}
fn key_acked_too() -> String {
    "9".into()
}

impl Default for LineKeys {
    fn default() -> LineKeys {
        LineKeys {
            ack: None,
            next: key_next(),
            repeat: key_repeat(),
            oncall: key_oncall(),
            acked_too: key_acked_too(),
        }
    }
}

/// The alert line (`AGI(alert,line)`): who may call in and the keys.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineCfg {
    /// The callback's `rewrite` rules: `+7...` and `8...` are one number.
    #[serde(default)]
    pub rewrite: Vec<crate::number::Rewrite>,
    /// A contact without a `pin` may use the line on caller ID alone.
    #[serde(default)]
    pub trust_caller_id: bool,
    #[serde(default)]
    pub keys: LineKeys,
}

/// One step: these contacts, and whoever is on call for these schedules
/// then, at once, `after_seconds` after the raise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub contacts: Vec<String>,
    #[serde(default)]
    pub schedules: Vec<String>,
    #[serde(default)]
    pub after_seconds: u64,
}

/// The escalation: steps, then `repeat` more rounds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chain {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub repeat: u32,
    #[serde(default)]
    pub repeat_after_seconds: u64,
}

/// Routes: the first whose `match` labels all equal the alert's; one
/// without `match` catches the rest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, String>,
    pub chain: String,
}

/// A heartbeat: a page when no ping came for `timeout_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatCfg {
    pub timeout_seconds: i64,
    /// The chain to page (else routed by `labels`, as alerts are).
    #[serde(default)]
    pub chain: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What the phone says.
    pub text: String,
}

/// Shortest and longest heartbeat timeout.
pub const HEARTBEAT_MIN: i64 = 10;
pub const HEARTBEAT_MAX: i64 = 30 * 86_400;

pub use crate::error::ConfigError;

/// The speech engine (owned by [`crate::speech`]).
pub use crate::speech::SpeechCfg;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    call: CallCfg,
    contacts: BTreeMap<String, Contact>,
    chains: BTreeMap<String, Chain>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    schedules: BTreeMap<String, ScheduleCfg>,
    #[serde(default)]
    heartbeats: BTreeMap<String, HeartbeatCfg>,
    #[serde(default)]
    line: LineCfg,
    #[serde(default)]
    speech: SpeechCfg,
    #[serde(default = "default_digit")]
    ack_digit: String,
    /// A stock prompt played when the message could not be rendered.
    #[serde(default = "default_fallback")]
    fallback_prompt: String,
    #[serde(default)]
    state_dir: Option<PathBuf>,
    #[serde(default)]
    sounds_dir: Option<PathBuf>,
    #[serde(default)]
    spool_dir: Option<PathBuf>,
}

fn default_digit() -> String {
    "1".into()
}
fn default_fallback() -> String {
    "tt-somethingwrong".into()
}

/// A checked `alerts.json` with every default resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertsConfig {
    pub call: CallCfg,
    pub contacts: BTreeMap<String, Contact>,
    pub chains: BTreeMap<String, Chain>,
    pub routes: Vec<Route>,
    /// On-call schedules by name.
    pub schedules: BTreeMap<String, Schedule>,
    /// Heartbeats by name.
    pub heartbeats: BTreeMap<String, HeartbeatCfg>,
    /// The alert line.
    pub line: LineCfg,
    pub speech: SpeechCfg,
    pub ack_digit: char,
    pub fallback_prompt: String,
    pub state_dir: PathBuf,
    pub sounds_dir: PathBuf,
    pub spool_dir: PathBuf,
}

/// `--config`, else `$AUTODIAL_ALERTS`, else `$AST_CONFIG_DIR/alerts.json`,
/// else `/etc/asterisk/alerts.json`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("AUTODIAL_ALERTS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => paths::config_dir().join("alerts.json"),
    }
}

/// A name for a contact or chain: it becomes part of a file name.
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn valid_number(n: &str) -> bool {
    let d = n.strip_prefix('+').unwrap_or(n);
    !d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit())
}

impl AlertsConfig {
    /// Reads and checks the file at `path`; errors name the file and key.
    pub fn load(path: &Path) -> Result<AlertsConfig, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_path_buf(),
            message,
        };
        let buf = crate::fsio::read_bounded(path, MAX_CONFIG).map_err(err)?;
        AlertsConfig::from_json(&buf).map_err(err)
    }

    /// Parses and checks JSON text.
    pub fn from_json(json: &[u8]) -> Result<AlertsConfig, String> {
        let raw: Raw = serde_json::from_slice(json).map_err(|e| format!("invalid config: {e}"))?;
        for (name, c) in &raw.contacts {
            if !valid_name(name) {
                return Err(format!(
                    "contacts.{name}: a contact name is 1-32 ASCII letters, digits, '-', '_'"
                ));
            }
            if !valid_number(&c.number) {
                return Err(format!(
                    "contacts.{name}.number: {:?} is not digits with an optional leading '+'",
                    c.number
                ));
            }
            for (i, n) in c.numbers.iter().enumerate() {
                if !valid_number(n) {
                    return Err(format!(
                        "contacts.{name}.numbers[{i}]: {n:?} is not digits with an optional leading '+'"
                    ));
                }
            }
            if let Some(p) = &c.pin {
                if !(4..=8).contains(&p.len()) || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("contacts.{name}.pin: 4 to 8 digits"));
                }
            }
        }
        let mut schedules = BTreeMap::new();
        for (name, s) in &raw.schedules {
            // a schedule's name is part of URLs (`/oncall/{name}.ics`)
            if !crate::oncall::config::valid_name(name) || name == "contacts" || name == "overrides"
            {
                return Err(format!(
                    "schedules.{name}: a schedule name is 1-32 ASCII letters, digits, '-', '_' (not contacts or overrides)"
                ));
            }
            let built = s.build(&format!("schedules.{name}"), |c| {
                raw.contacts.contains_key(c)
            })?;
            schedules.insert(name.clone(), built);
        }
        for (name, chain) in &raw.chains {
            if !valid_name(name) {
                return Err(format!(
                    "chains.{name}: a chain name is 1-32 ASCII letters, digits, '-', '_'"
                ));
            }
            if chain.steps.is_empty() {
                return Err(format!("chains.{name}.steps: at least one step"));
            }
            if chain.repeat > MAX_REPEAT {
                return Err(format!("chains.{name}.repeat: at most {MAX_REPEAT}"));
            }
            for (i, s) in chain.steps.iter().enumerate() {
                if s.contacts.is_empty() && s.schedules.is_empty() {
                    return Err(format!(
                        "chains.{name}.steps[{i}]: no contacts and no schedules"
                    ));
                }
                for sc in &s.schedules {
                    if !schedules.contains_key(sc) {
                        return Err(format!(
                            "chains.{name}.steps[{i}].schedules: no schedule {sc:?}"
                        ));
                    }
                }
                if s.after_seconds > 7 * 86400 {
                    return Err(format!(
                        "chains.{name}.steps[{i}].after_seconds: at most 7 days"
                    ));
                }
                for c in &s.contacts {
                    if !raw.contacts.contains_key(c) {
                        return Err(format!(
                            "chains.{name}.steps[{i}].contacts: no contact {c:?}"
                        ));
                    }
                }
            }
            if chain.repeat_after_seconds > 7 * 86400 {
                return Err(format!(
                    "chains.{name}.repeat_after_seconds: at most 7 days"
                ));
            }
        }
        for (i, r) in raw.routes.iter().enumerate() {
            if !raw.chains.contains_key(&r.chain) {
                return Err(format!("routes[{i}].chain: no chain {:?}", r.chain));
            }
        }
        let digit = match raw.ack_digit.as_bytes() {
            [d] if d.is_ascii_digit() || *d == b'*' || *d == b'#' => *d as char,
            _ => {
                return Err(format!(
                    "ack_digit: {:?} is not one key (0-9, * or #)",
                    raw.ack_digit
                ))
            }
        };
        crate::number::check_rules("line.rewrite", &raw.line.rewrite)?;
        {
            let k = &raw.line.keys;
            let ack = k.ack.clone().unwrap_or_else(|| raw.ack_digit.clone());
            let keys = [
                ("ack", &ack),
                ("next", &k.next),
                ("repeat", &k.repeat),
                ("oncall", &k.oncall),
                ("acked_too", &k.acked_too),
            ];
            for (i, (name, key)) in keys.iter().enumerate() {
                let one =
                    matches!(key.as_bytes(), [d] if d.is_ascii_digit() || *d == b'*' || *d == b'#');
                if !one {
                    return Err(format!(
                        "line.keys.{name}: {key:?} is not one key (0-9, * or #)"
                    ));
                }
                if let Some((other, _)) = keys[..i].iter().find(|(_, k2)| k2 == key) {
                    return Err(format!(
                        "line.keys.{name}: {key:?} is already line.keys.{other}"
                    ));
                }
            }
        }
        match raw.speech.engine.as_str() {
            "espeak-ng" | "none" => {}
            "command" => {
                if raw.speech.command.is_empty() {
                    return Err("speech.command: the argv of the engine, with {wav}".into());
                }
                if !raw.speech.command.iter().any(|a| a.contains("{wav}")) {
                    return Err("speech.command: no argument holds {wav}".into());
                }
            }
            other => {
                return Err(format!(
                    "speech.engine: {other:?} is not espeak-ng, command or none"
                ))
            }
        }
        if raw.speech.timeout_seconds == 0 || raw.speech.timeout_seconds > 60 {
            return Err("speech.timeout_seconds: 1 to 60".into());
        }
        for (lang, t) in &raw.speech.messages {
            if !t.contains("{text}") {
                return Err(format!("speech.messages.{lang}: no {{text}}"));
            }
        }
        if raw.fallback_prompt.is_empty()
            || raw
                .fallback_prompt
                .contains(|c: char| c.is_whitespace() || c == '"')
        {
            return Err("fallback_prompt: a sound name without blanks or quotes".into());
        }
        let state_dir = raw
            .state_dir
            .unwrap_or_else(|| paths::var_dir().join("autodial"));
        let cfg = AlertsConfig {
            sounds_dir: raw.sounds_dir.unwrap_or_else(|| state_dir.join("sounds")),
            spool_dir: raw.spool_dir.unwrap_or_else(paths::spool_dir),
            state_dir,
            call: raw.call,
            contacts: raw.contacts,
            chains: raw.chains,
            routes: raw.routes,
            schedules,
            heartbeats: raw.heartbeats,
            line: raw.line,
            speech: raw.speech,
            ack_digit: digit,
            fallback_prompt: raw.fallback_prompt,
        };
        for (name, h) in &cfg.heartbeats {
            if !valid_name(name) {
                return Err(format!(
                    "heartbeats.{name}: a heartbeat name is 1-32 ASCII letters, digits, '-', '_'"
                ));
            }
            if !(HEARTBEAT_MIN..=HEARTBEAT_MAX).contains(&h.timeout_seconds) {
                return Err(format!(
                    "heartbeats.{name}.timeout_seconds: {HEARTBEAT_MIN} s to 30 days ({HEARTBEAT_MAX} s)"
                ));
            }
            if h.text.trim().is_empty() || h.text.len() > super::MAX_TEXT {
                return Err(format!(
                    "heartbeats.{name}.text: 1 to {} bytes",
                    super::MAX_TEXT
                ));
            }
            if let Err(e) = cfg.choose_chain(h.chain.as_deref(), &h.labels) {
                let key = if h.chain.is_some() { "chain" } else { "labels" };
                return Err(format!("heartbeats.{name}.{key}: {e}"));
            }
        }
        // A sample call must render as a call file Asterisk reads as meant.
        let sample = cfg.call_file("+79161112233", "sample-alert", 1, 1);
        sample.render().map_err(|e| format!("call: {e}"))?;
        if cfg
            .call
            .channel
            .replace("{number}", "")
            .contains(['{', '}'])
        {
            return Err("call.channel: a placeholder other than {number}".into());
        }
        Ok(cfg)
    }

    /// The chain for an alert: `explicit` when given (it must exist), else
    /// the first route whose `match` labels all equal the alert's.
    pub fn choose_chain(
        &self,
        explicit: Option<&str>,
        labels: &BTreeMap<String, String>,
    ) -> Result<String, String> {
        if let Some(c) = explicit {
            return if self.chains.contains_key(c) {
                Ok(c.to_string())
            } else {
                Err(format!("no chain {c:?} in the config"))
            };
        }
        self.routes
            .iter()
            .find(|r| r.matches.iter().all(|(k, v)| labels.get(k) == Some(v)))
            .map(|r| r.chain.clone())
            .ok_or_else(|| "no route matches the alert's labels and no chain was given".into())
    }

    /// The call file for one planned call.
    pub fn call_file(&self, number: &str, id: &str, episode: u32, call_id: i64) -> CallFile {
        let mut cf = CallFile::new(
            self.call.channel.replace("{number}", number),
            Action::Extension {
                context: self.call.context.clone(),
                extension: "s".into(),
                priority: Some(1),
            },
        );
        cf.callerid = self.call.callerid.as_deref().map(CallerId::parse);
        cf.wait_time = self.call.wait_time;
        cf.max_retries = Some(0);
        cf.account = self.call.account.clone();
        cf.variables = vec![
            ("ALERT_ID".into(), id.into()),
            ("ALERT_EPISODE".into(), episode.to_string()),
            ("ALERT_CALL".into(), call_id.to_string()),
        ];
        cf
    }

    /// The language for a contact.
    pub fn language_of(&self, contact: &str) -> String {
        self.contacts
            .get(contact)
            .and_then(|c| c.language.clone())
            .unwrap_or_else(|| self.speech.language.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const SAMPLE: &str = r#"{
      "call": {"channel": "PJSIP/{number}@sip-provider",
               "callerid": "\"Monitoring\" <84955556677>",
               "wait_time": 30, "context": "autodial-alert"},
      "contacts": {"ivan": {"number": "89161112233", "language": "ru"},
                   "petr": {"number": "89162223344"}},
      "chains": {"default": {"steps": [{"contacts": ["ivan"], "after_seconds": 0},
                                       {"contacts": ["petr"], "after_seconds": 120}],
                             "repeat": 1, "repeat_after_seconds": 300}},
      "routes": [{"match": {"team": "db"}, "chain": "default"}, {"chain": "default"}],
      "speech": {"engine": "espeak-ng", "language": "en",
                 "voices": {"en": "en-us", "ru": "ru"}},
      "ack_digit": "1",
      "state_dir": "/var/lib/asterisk/autodial",
      "sounds_dir": "/var/lib/asterisk/autodial/sounds",
      "spool_dir": "/var/spool/asterisk"
    }"#;

    #[test]
    fn the_issue_sample_loads() {
        let c = AlertsConfig::from_json(SAMPLE.as_bytes()).unwrap();
        assert_eq!(c.call.context, "autodial-alert");
        assert_eq!(c.ack_digit, '1');
        assert_eq!(c.language_of("ivan"), "ru");
        assert_eq!(c.language_of("petr"), "en");
        let mut labels = BTreeMap::new();
        assert_eq!(c.choose_chain(None, &labels).unwrap(), "default");
        labels.insert("team".into(), "db".into());
        assert_eq!(c.choose_chain(None, &labels).unwrap(), "default");
        assert!(c.choose_chain(Some("nope"), &labels).is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                SAMPLE.replace("\"ack_digit\"", "\"ack_digits\""),
                "ack_digits",
            ),
            (
                SAMPLE.replace("[\"petr\"]", "[\"pert\"]"),
                "chains.default.steps[1].contacts: no contact \"pert\"",
            ),
            (
                SAMPLE.replace("{\"chain\": \"default\"}]", "{\"chain\": \"other\"}]"),
                "routes[1].chain",
            ),
            (
                SAMPLE.replace("89162223344", "8916 222"),
                "contacts.petr.number",
            ),
            (
                SAMPLE.replace("PJSIP/{number}@sip-provider", "PJSIP/{num}"),
                "call.channel",
            ),
            (
                SAMPLE.replace("PJSIP/{number}@sip-provider", "PJSIP"),
                "Channel",
            ),
            (
                SAMPLE.replace("\"ack_digit\": \"1\"", "\"ack_digit\": \"12\""),
                "ack_digit",
            ),
            (
                SAMPLE.replace("\"espeak-ng\"", "\"festival\""),
                "speech.engine",
            ),
            (SAMPLE.replace("\"repeat\": 1", "\"repeat\": 100"), "repeat"),
        ];
        for (json, want) in cases {
            let e = AlertsConfig::from_json(json.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
