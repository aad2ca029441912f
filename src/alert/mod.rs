//! Phone alerts: the model and the escalation plan, as pure functions.
//!
//! An alert is raised with an id, a text, labels and a chain; every call of
//! every step and round is planned at once (offsets from the raise) and
//! queued as a call file scheduled by its mtime, so the spool is the
//! scheduler. An acknowledgement or a resolution removes the calls still
//! pending. The state lives in SQLite ([`store`]); [`pager`] ties config,
//! store, speech and spool together for the command line, the AGI program
//! and the web receiver.

pub mod config;
pub mod pager;
pub mod store;

use std::collections::BTreeMap;
use std::fmt;

pub use config::{AlertsConfig, Chain, Step};

/// The `alert` AGI program's `--help` (also its man page, alert(8)).
pub const AGI_HELP: &str = "\
alert: Asterisk AGI program of phone alerts (see `autodial alert`).

Dialplan (agi-bin/extensions_alert.conf):
    [autodial-alert]
    exten => s,1,Answer()
     same => n,AGI(alert,${ALERT_CALL})
    exten => failed,1,AGI(alert,${ALERT_CALL},failed,${REASON})

A heartbeat's timer (see `autodial heartbeat`) runs it as
    AGI(alert,heartbeat,NAME)
in [autodial-heartbeat]: it arms the next timer (ALIVE), raises the alert
hb-NAME when the deadline passed (RAISED), or does nothing (IDLE).

The on-call line runs it as
    AGI(alert,oncall,SCHEDULE)
and dials what it sets: ONCALL_NAME, ONCALL_NUMBER, ONCALL_DIAL,
ONCALL_NEXT_DIAL, ONCALL_STATUS (OK, NOBODY, UNKNOWN_SCHEDULE, ERROR).

The alert line runs it as
    AGI(alert,line)
for contacts calling in (caller ID, then their PIN): it says what is
firing and takes the ack digit, # next, * repeat, 0 who is on call,
9 the acknowledged alerts too (line.keys); sets LINE_STATUS to OK,
DENIED, LOCKED or ERROR. It plays only what was rendered ahead
(`autodial alert prepare`).

Config: $AUTODIAL_ALERTS, else $AST_CONFIG_DIR/alerts.json, else
/etc/asterisk/alerts.json. Log: $AST_LOG_DIR/autodial-alert.log.

Sets ALERT_STATUS to ACKED, NOACK, STALE, RECORDED, ALIVE, RAISED, IDLE
or ERROR.
Exit status 0, or 1 on ERROR.
";

/// Most bytes in an alert id.
pub const MAX_ID: usize = 64;
/// Most bytes of alert text kept (a monitoring system's text can be long;
/// what is spoken is bounded by the speech module).
pub const MAX_TEXT: usize = 4096;

pub use crate::timefmt::{rfc3339, ser_opt_time, ser_time};

/// Most labels kept on an alert, and bytes kept of a label's key or value.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL: usize = 256;

/// Fits labels from a monitoring system into the stored bounds: the
/// first [`MAX_LABELS`] (by key) are kept, keys and values cut to
/// [`MAX_LABEL`] bytes on a character boundary, empty keys dropped.
/// Returns the labels and how many were dropped or shortened. A real
/// notification is never refused for its labels' size.
pub fn fit_labels(labels: &BTreeMap<String, String>) -> (BTreeMap<String, String>, u32) {
    let mut out = BTreeMap::new();
    let mut cut_n = 0u32;
    for (k, v) in labels {
        if k.is_empty() || out.len() >= MAX_LABELS {
            cut_n += 1;
            continue;
        }
        let (k2, v2) = (cut(k, MAX_LABEL), cut(v, MAX_LABEL));
        if k2.len() < k.len() || v2.len() < v.len() {
            cut_n += 1;
        }
        if out.contains_key(k2) {
            cut_n += 1;
            continue;
        }
        out.insert(k2.to_string(), v2.to_string());
    }
    (out, cut_n)
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// True for an alert id: ASCII letters, digits, `-`, `_`, `.`; 1 to 64
/// bytes. Such an id can be part of a file name but never a path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Where an alert stands (of its current episode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Acked,
    Resolved,
    /// Every planned call has an outcome and nobody acknowledged.
    Unacknowledged,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Acked => "acked",
            AlertState::Resolved => "resolved",
            AlertState::Unacknowledged => "unacknowledged",
        }
    }

    pub fn parse(s: &str) -> Option<AlertState> {
        Some(match s {
            "firing" => AlertState::Firing,
            "acked" => AlertState::Acked,
            "resolved" => AlertState::Resolved,
            "unacknowledged" => AlertState::Unacknowledged,
            _ => return None,
        })
    }

    /// Raising an id in this state changes only its text.
    pub fn is_open(self) -> bool {
        matches!(self, AlertState::Firing | AlertState::Acked)
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an acknowledgement came in: a key press on an alert `call`, the
/// alert `line` (a call in), the command line (`cli`), the HTTP API
/// (`http`), the status page (`web`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    Call,
    Line,
    Cli,
    Http,
    Web,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Call => "call",
            Via::Line => "line",
            Via::Cli => "cli",
            Via::Http => "http",
            Via::Web => "web",
        }
    }

    pub fn parse(s: &str) -> Option<Via> {
        Some(match s {
            "call" => Via::Call,
            "line" => Via::Line,
            "cli" => Via::Cli,
            "http" => Via::Http,
            "web" => Via::Web,
            _ => return None,
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of one planned call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Scheduled,
    Cancelled,
    AnsweredAcked,
    AnsweredNoAck,
    NoAnswer,
    Busy,
    Failed,
    Stale,
    /// A schedule of the step had nobody on call then: never called.
    NobodyOnCall,
    /// Replaced by a call to whoever is on call now (an override, a new
    /// config); its file removed.
    Replanned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Scheduled => "scheduled",
            Outcome::Cancelled => "cancelled",
            Outcome::AnsweredAcked => "answered_acked",
            Outcome::AnsweredNoAck => "answered_no_ack",
            Outcome::NoAnswer => "no_answer",
            Outcome::Busy => "busy",
            Outcome::Failed => "failed",
            Outcome::Stale => "stale",
            Outcome::NobodyOnCall => "nobody_on_call",
            Outcome::Replanned => "replanned",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "scheduled" => Outcome::Scheduled,
            "cancelled" => Outcome::Cancelled,
            "answered_acked" => Outcome::AnsweredAcked,
            "answered_no_ack" => Outcome::AnsweredNoAck,
            "no_answer" => Outcome::NoAnswer,
            "busy" => Outcome::Busy,
            "failed" => Outcome::Failed,
            "stale" => Outcome::Stale,
            "nobody_on_call" => Outcome::NobodyOnCall,
            "replanned" => Outcome::Replanned,
            _ => return None,
        })
    }

    /// The outcome of a failed attempt, from Asterisk's `REASON`: 3 no
    /// answer, 5 busy, anything else (0, 1, 8 congestion, ...) failed.
    pub fn from_reason(reason: &str) -> Outcome {
        match reason.trim() {
            "3" => Outcome::NoAnswer,
            "5" => Outcome::Busy,
            _ => Outcome::Failed,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call of the plan, `offset` seconds after the raise. A step's
/// schedule that has nobody on call then is still a row of the plan, with
/// an empty `contact` (recorded `nobody_on_call`, never silent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub contact: String,
    pub step: u32,
    pub round: u32,
    pub offset: u64,
    /// The schedule that chose the contact (`None`: named in the step).
    pub schedule: Option<String>,
    /// Why the schedule chose them: `layer weekly`, `override 3`,
    /// `fallback`, `nobody`.
    pub why: Option<String>,
}

impl Planned {
    /// Nobody was on call for this row's schedule.
    pub fn is_nobody(&self) -> bool {
        self.contact.is_empty()
    }
}

/// The instants of `chain`'s steps, in time order: step `i` of round `r`
/// at `after_seconds[i] + r * (last - first + repeat_after_seconds)`, so
/// each round starts `repeat_after_seconds` after the previous round's
/// last step. Returns (offset, round, step).
pub fn slots(chain: &Chain) -> Vec<(u64, u32, u32)> {
    let first = chain
        .steps
        .iter()
        .map(|s| s.after_seconds)
        .min()
        .unwrap_or(0);
    let last = chain
        .steps
        .iter()
        .map(|s| s.after_seconds)
        .max()
        .unwrap_or(0);
    let period = last - first + chain.repeat_after_seconds;
    let mut out = Vec::new();
    for round in 0..=chain.repeat {
        for (i, step) in chain.steps.iter().enumerate() {
            out.push((
                step.after_seconds + u64::from(round) * period,
                round,
                i as u32,
            ));
        }
    }
    out.sort();
    out
}

/// Every call of `chain`, in time order ([`slots`]): each step as
/// [`plan_step`] plans it for the instant it rings.
pub fn plan(chain: &Chain, who: impl Fn(&str, u64) -> crate::oncall::OnCall) -> Vec<Planned> {
    slots(chain)
        .into_iter()
        .flat_map(|(offset, round, step)| {
            plan_step(&chain.steps[step as usize], round, step, offset, |sc| {
                who(sc, offset)
            })
        })
        .collect()
}

/// The calls of one step: its contacts, then, for each of its schedules,
/// whoever `who(schedule)` says is on call (each person once per step); a
/// schedule with nobody on call is a row with an empty contact.
pub fn plan_step(
    s: &Step,
    round: u32,
    step: u32,
    offset: u64,
    who: impl Fn(&str) -> crate::oncall::OnCall,
) -> Vec<Planned> {
    let mut out = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let row = |contact: String, schedule: Option<String>, why: Option<String>| Planned {
        contact,
        step,
        round,
        offset,
        schedule,
        why,
    };
    for c in &s.contacts {
        if !seen.contains(c) {
            seen.push(c.clone());
            out.push(row(c.clone(), None, None));
        }
    }
    for sc in &s.schedules {
        let on = who(sc);
        let why = crate::oncall::view::Why::of(&on.source).text();
        if on.contacts.is_empty() {
            out.push(row(String::new(), Some(sc.clone()), Some(why)));
            continue;
        }
        // people this step calls already are not called twice
        for c in on.contacts {
            if !seen.contains(&c) {
                seen.push(c.clone());
                out.push(row(c, Some(sc.clone()), Some(why.clone())));
            }
        }
    }
    out
}

/// The file name of one planned call: unique per alert, episode, round,
/// step and contact, and a plain file name (the id and the contact name
/// are checked to be). A re-planned call gets `.v{version}` (a new name:
/// Asterisk runs a pending file at the time it first saw it, whatever is
/// renamed over it). A row with nobody on call gets a `.none` name that
/// is never published.
pub fn call_file_name(id: &str, episode: u32, p: &Planned, version: u32) -> String {
    let who = match &p.schedule {
        Some(sc) if p.is_nobody() => format!("@{sc}"),
        _ => p.contact.clone(),
    };
    let v = if version > 0 {
        format!(".v{version}")
    } else {
        String::new()
    };
    let ext = if p.is_nobody() { "none" } else { "call" };
    format!(
        "alert-{id}-e{episode}-r{}-s{}-{who}{v}.{ext}",
        p.round, p.step
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(steps: &[(&[&str], u64)], repeat: u32, after: u64) -> Chain {
        Chain {
            steps: steps
                .iter()
                .map(|(c, a)| Step {
                    contacts: c.iter().map(|s| s.to_string()).collect(),
                    schedules: Vec::new(),
                    after_seconds: *a,
                })
                .collect(),
            repeat,
            repeat_after_seconds: after,
        }
    }

    #[test]
    fn steps_are_offsets_from_the_raise_and_rounds_follow_the_last_step() {
        let c = chain(&[(&["ivan"], 0), (&["petr", "anna"], 120)], 1, 300);
        let p: Vec<_> = plan(&c, |_, _| unreachable!())
            .into_iter()
            .map(|p| (p.contact, p.step, p.round, p.offset))
            .collect();
        assert_eq!(
            p,
            [
                ("ivan".into(), 0, 0, 0),
                ("petr".into(), 1, 0, 120),
                ("anna".into(), 1, 0, 120),
                ("ivan".into(), 0, 1, 420),
                ("petr".into(), 1, 1, 540),
                ("anna".into(), 1, 1, 540),
            ]
        );
    }

    #[test]
    fn a_schedule_step_calls_whoever_is_on_call_at_that_steps_instant() {
        use crate::oncall::{OnCall, Source};
        let mut c = chain(&[(&["lead"], 0), (&[], 600)], 1, 1800);
        c.steps[0].schedules = vec!["dba".into()];
        c.steps[1].schedules = vec!["dba".into(), "ops".into()];
        // dba: ivan until 10 minutes, then petr; ops: nobody, then lead
        let who = |sc: &str, off: u64| match (sc, off) {
            ("dba", o) if o < 600 => OnCall {
                contacts: vec!["ivan".into()],
                source: Source::Layer("weekly".into()),
            },
            ("dba", _) => OnCall {
                contacts: vec!["petr".into()],
                source: Source::Override(7),
            },
            (_, o) if o < 1000 => OnCall {
                contacts: vec![],
                source: Source::Nobody,
            },
            _ => OnCall {
                contacts: vec!["lead".into(), "petr".into()],
                source: Source::Fallback,
            },
        };
        let p: Vec<_> = plan(&c, who)
            .into_iter()
            .map(|p| (p.contact, p.round, p.step, p.offset, p.schedule, p.why))
            .collect();
        let s = |x: &str| Some(x.to_string());
        assert_eq!(
            p,
            [
                ("lead".into(), 0, 0, 0, None, None),
                ("ivan".into(), 0, 0, 0, s("dba"), s("layer weekly")),
                ("petr".into(), 0, 1, 600, s("dba"), s("override 7")),
                (String::new(), 0, 1, 600, s("ops"), s("nobody")),
                ("lead".into(), 1, 0, 2400, None, None),
                ("petr".into(), 1, 0, 2400, s("dba"), s("override 7")),
                ("petr".into(), 1, 1, 3000, s("dba"), s("override 7")),
                // petr is called by dba already in this step: only lead
                ("lead".into(), 1, 1, 3000, s("ops"), s("fallback")),
            ]
        );
    }

    #[test]
    fn labels_beyond_the_bounds_are_cut_never_refused() {
        let mut l: BTreeMap<String, String> = (0..65)
            .map(|i| (format!("k{i:02}"), "v".to_string()))
            .collect();
        l.insert("url".into(), "é".repeat(200)); // 400 bytes
        l.insert(String::new(), "x".into());
        let (fit, n) = fit_labels(&l);
        assert_eq!(fit.len(), MAX_LABELS);
        // 2 dropped past 64, the empty key dropped; "url" sorts last: dropped
        assert_eq!(n, 3);
        assert!(fit.values().all(|v| v.len() <= MAX_LABEL));
        let mut small = BTreeMap::new();
        small.insert("url".to_string(), "é".repeat(200));
        let (fit, n) = fit_labels(&small);
        assert_eq!((fit["url"].len(), n), (256, 1));
        assert!(fit["url"].chars().all(|c| c == 'é'));
        let (same, n) = fit_labels(&fit);
        assert_eq!((same, n), (fit, 0));
    }

    #[test]
    fn ids_and_names() {
        for ok in ["disk-db1", "am-0123456789abcdef", "a.b_c", &"x".repeat(64)] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "a/b", "../x", "a b", "é", &"x".repeat(65), "a\nb"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        let mut p = Planned {
            contact: "ivan".into(),
            step: 1,
            round: 2,
            offset: 0,
            schedule: None,
            why: None,
        };
        let n = call_file_name("disk-db1", 3, &p, 0);
        assert_eq!(n, "alert-disk-db1-e3-r2-s1-ivan.call");
        assert!(crate::callfile::spool::valid_name(&n));
        let n = call_file_name("disk-db1", 3, &p, 2);
        assert_eq!(n, "alert-disk-db1-e3-r2-s1-ivan.v2.call");
        assert!(crate::callfile::spool::valid_name(&n));
        p.contact.clear();
        p.schedule = Some("dba".into());
        assert_eq!(call_file_name("x", 1, &p, 0), "alert-x-e1-r2-s1-@dba.none");
        assert_eq!(Outcome::from_reason("3"), Outcome::NoAnswer);
        assert_eq!(Outcome::from_reason("5"), Outcome::Busy);
        for r in ["0", "1", "8", "", "x"] {
            assert_eq!(Outcome::from_reason(r), Outcome::Failed);
        }
    }
}
