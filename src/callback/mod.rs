//! The callback policy: pure functions from the caller's number, the config
//! and facts about the spool to a decision. All I/O stays in the binary.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::callfile::{Action, CallFile, CallerId};
pub mod config;
pub mod permit;
pub mod queue;
pub mod state;

pub use config::{Config, ConfigError, Rewrite};

/// The `callback` program's `--help` (also its man page, callback(8)).
pub const HELP: &str = "\
callback: Asterisk AGI program that queues a callback for permitted callers.

Dialplan:
    exten => 84955556677,1,AGI(callback)           ; number from caller ID
    exten => 84955556677,1,AGI(callback,${NUMBER}) ; number from argument 1
    same  => n,GotoIf($[\"${CALLBACK_STATUS}\" = \"QUEUED\"]?done)

Usage:
    callback [NUMBER]    run as AGI: env block on stdin, commands on stdout
    callback --demo      run once on a built-in env block and config, with a
                         scripted Asterisk; writes ./callback-demo/
    callback --help | --version

Config (JSON): $CALLBACK_CONFIG, else $AST_CONFIG_DIR/callback.json, else
/etc/asterisk/callback.json. See docs/callback.md for every key.

Sets CALLBACK_STATUS to QUEUED, DUPLICATE, DENIED, INVALID, THROTTLED or
ERROR (and CALLBACK_FILE when QUEUED). Exit status 0, or 1 on ERROR.
";

pub use crate::number::{rewrite, valid_number, MAX_DIGITS};
/// Name prefix of the call files this program queues.
pub const FILE_PREFIX: &str = "callback-";

/// The outcome, as `CALLBACK_STATUS` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Queued,
    Duplicate,
    Denied,
    Invalid,
    Throttled,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "QUEUED",
            Outcome::Duplicate => "DUPLICATE",
            Outcome::Denied => "DENIED",
            Outcome::Invalid => "INVALID",
            Outcome::Throttled => "THROTTLED",
            Outcome::Error => "ERROR",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision: the outcome, the number it concerns (when there is a usable
/// one), why, and for `Queued` the call file to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub number: Option<String>,
    pub reason: String,
    pub queue: Option<Box<Queue>>,
}

/// What to publish for a `Queued` decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub name: String,
    pub call: CallFile,
    pub at: SystemTime,
}

impl Decision {
    fn new(outcome: Outcome, number: Option<&str>, reason: impl Into<String>) -> Decision {
        Decision {
            outcome,
            number: number.map(str::to_string),
            reason: reason.into(),
            queue: None,
        }
    }

    /// An `ERROR` decision (config or spool failure).
    pub fn error(number: Option<&str>, reason: impl Into<String>) -> Decision {
        Decision::new(Outcome::Error, number, reason)
    }

    /// A `DUPLICATE` decision (the spool found a pending file).
    pub fn duplicate(number: &str, file: &str) -> Decision {
        Decision::new(
            Outcome::Duplicate,
            Some(number),
            format!("a callback is already pending ({file})"),
        )
    }
}

/// The caller's number: the first AGI argument when given and not empty,
/// else `agi_callerid` (`None` when Asterisk said `unknown`).
pub fn candidate<'a>(arg1: Option<&'a [u8]>, callerid: Option<&'a [u8]>) -> Option<&'a [u8]> {
    arg1.filter(|a| !a.is_empty()).or(callerid)
}

/// Validates and normalizes the raw caller ID. `Err` is the `INVALID`
/// decision.
pub fn screen(raw: Option<&[u8]>, cfg: &Config) -> Result<String, Decision> {
    let Some(raw) = raw else {
        return Err(Decision::new(Outcome::Invalid, None, "no caller ID"));
    };
    if !valid_number(raw) {
        return Err(Decision::new(
            Outcome::Invalid,
            None,
            format!(
                "caller ID \"{}\" is not a number (ASCII digits, optional leading '+', at most {MAX_DIGITS} digits)",
                crate::escape_bytes(&raw[..raw.len().min(64)])
            ),
        ));
    }
    // valid_number guarantees ASCII.
    let number = String::from_utf8_lossy(raw);
    let number = rewrite(&number, &cfg.rewrite);
    if !valid_number(number.as_bytes()) {
        return Err(Decision::new(
            Outcome::Invalid,
            Some(&number),
            "the rewritten number is not a number",
        ));
    }
    Ok(number)
}

/// What the binary found out about the spool before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    /// Is the number on the permit list?
    pub permitted: bool,
    /// Is `callback-<number>.call` pending?
    pub pending_same: bool,
    /// How many callback files are pending in all.
    pub pending_count: usize,
    /// When a callback for this number was last queued.
    pub last_queued: Option<SystemTime>,
}

/// The call file's name for `number`.
pub fn file_name(number: &str) -> String {
    format!("{FILE_PREFIX}{number}.call")
}

/// The call file for a permitted `number`, built from config and the number
/// only.
pub fn build_call(cfg: &Config, number: &str) -> CallFile {
    let t = &cfg.call;
    let fill = |s: &str| s.replace("{number}", number);
    let mut call = CallFile::new(
        fill(&t.channel),
        Action::Extension {
            context: fill(&t.context),
            extension: fill(&t.extension),
            priority: Some(t.priority),
        },
    );
    call.callerid = t.callerid.as_deref().map(CallerId::parse);
    call.max_retries = t.max_retries;
    call.retry_time = t.retry_time;
    call.wait_time = t.wait_time;
    call.account = t.account.clone();
    call.variables = t
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), fill(v)))
        .collect();
    call.archive = t.archive;
    call
}

/// Decides for a screened `number`.
pub fn decide(number: &str, facts: &Facts, cfg: &Config, now: SystemTime) -> Decision {
    let name = file_name(number);
    if !facts.permitted {
        return Decision::new(Outcome::Denied, Some(number), "not on the permit list");
    }
    if facts.pending_same {
        return Decision::duplicate(number, &name);
    }
    if cfg.cooldown_seconds > 0 {
        if let Some(last) = facts.last_queued {
            let since = now.duration_since(last).unwrap_or(Duration::ZERO);
            let cool = Duration::from_secs(cfg.cooldown_seconds.into());
            if since < cool {
                return Decision::new(
                    Outcome::Throttled,
                    Some(number),
                    format!(
                        "cool-down: last callback queued {}s ago, {}s required",
                        since.as_secs(),
                        cool.as_secs()
                    ),
                );
            }
        }
    }
    if facts.pending_count >= cfg.max_pending {
        return Decision::new(
            Outcome::Throttled,
            Some(number),
            format!(
                "{} callbacks pending, max_pending is {}",
                facts.pending_count, cfg.max_pending
            ),
        );
    }
    let at = now + Duration::from_secs(cfg.delay_seconds.into());
    Decision {
        outcome: Outcome::Queued,
        number: Some(number.to_string()),
        reason: format!("callback queued as {name}"),
        queue: Some(Box::new(Queue {
            name,
            call: build_call(cfg, number),
            at,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_json(
            format!(
                r#"{{"permit": ["89105647899"], "rewrite": [{{"prefix": "+7", "replace": "8"}}, {{"prefix": "7", "replace": "8", "digits": 11}}],
                "call": {{"channel": "PJSIP/{{number}}@sip-provider", "context": "outgoing_to_{{number}}"}}{extra}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn one_permit_entry_covers_three_forms() {
        let c = cfg("");
        for raw in ["+79105647899", "79105647899", "89105647899"] {
            assert_eq!(screen(Some(raw.as_bytes()), &c).unwrap(), "89105647899");
        }
        // digits rule: a 10-digit number starting with 7 is left alone
        assert_eq!(screen(Some(b"7910564789"), &c).unwrap(), "7910564789");
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        let c = cfg("");
        for raw in [
            &b"unknown"[..],
            b"",
            b"anonymous",
            b"Restricted",
            b"../../etc/x",
            b"a/b",
            b"123;x",
            b"123 #x",
            b"123@ctx",
            b"123&PJSIP/x",
            b"\"X\" <123>",
            b"89105647899\nApplication: System",
            b"89105647899\r\nApplication: System",
            b"89105647899\rApplication: System",
            "\u{0661}\u{0662}\u{0663}".as_bytes(),
            "\u{ff11}\u{ff12}".as_bytes(),
            b"++1",
            b"+",
        ] {
            let d = screen(Some(raw), &c).unwrap_err();
            assert_eq!(d.outcome, Outcome::Invalid, "{raw:?}");
            assert!(d.queue.is_none());
        }
        assert!(screen(Some("9".repeat(300).as_bytes()), &c).is_err());
        assert!(screen(None, &c).is_err());
    }

    #[test]
    fn decisions() {
        let c = cfg(r#", "cooldown_seconds": 60, "max_pending": 2, "delay_seconds": 5"#);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let ok = Facts {
            permitted: true,
            ..Facts::default()
        };
        let d = decide("89105647899", &ok, &c, now);
        assert_eq!(d.outcome, Outcome::Queued);
        let q = d.queue.unwrap();
        assert_eq!(q.name, "callback-89105647899.call");
        assert_eq!(q.at, now + Duration::from_secs(5));
        assert_eq!(q.call.channel, "PJSIP/89105647899@sip-provider");

        let denied = decide("123", &Facts::default(), &c, now);
        assert_eq!(denied.outcome, Outcome::Denied);
        let dup = Facts {
            pending_same: true,
            ..ok
        };
        assert_eq!(decide("1", &dup, &c, now).outcome, Outcome::Duplicate);
        let cool = Facts {
            last_queued: Some(now - Duration::from_secs(59)),
            ..ok
        };
        assert_eq!(decide("1", &cool, &c, now).outcome, Outcome::Throttled);
        let warm = Facts {
            last_queued: Some(now - Duration::from_secs(61)),
            ..ok
        };
        assert_eq!(decide("1", &warm, &c, now).outcome, Outcome::Queued);
        let full = Facts {
            pending_count: 2,
            ..ok
        };
        assert_eq!(decide("1", &full, &c, now).outcome, Outcome::Throttled);
    }
}
