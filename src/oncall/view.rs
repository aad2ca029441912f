//! What people see of a schedule, as `--json`, HTTP and the feeds print
//! it: one shape, times RFC 3339 UTC.

use serde::Serialize;

use super::{Current, OnCall, Override, Piece, Source};
use crate::timefmt::{ser_opt_time, ser_time};

/// Why someone is on call, in words: `layer`, `override`, `fallback` or
/// `nobody`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Why {
    pub why: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_id: Option<i64>,
}

impl Why {
    pub fn of(s: &Source) -> Why {
        let (why, layer, override_id) = match s {
            Source::Layer(l) => ("layer", Some(l.clone()), None),
            Source::Override(id) => ("override", None, Some(*id)),
            Source::Fallback => ("fallback", None, None),
            Source::Nobody => ("nobody", None, None),
        };
        Why {
            why,
            layer,
            override_id,
        }
    }

    /// `layer weekly`, `override 12`, `fallback`, `nobody`.
    pub fn text(&self) -> String {
        match (&self.layer, self.override_id) {
            (Some(l), _) => format!("layer {l}"),
            (_, Some(id)) => format!("override {id}"),
            _ => self.why.to_string(),
        }
    }
}

/// One final shift: who, from when to when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub schedule: String,
    #[serde(serialize_with = "ser_time")]
    pub from: i64,
    #[serde(serialize_with = "ser_time")]
    pub to: i64,
    pub contacts: Vec<String>,
    #[serde(flatten)]
    pub why: Why,
}

impl Shift {
    pub fn of(schedule: &str, p: &Piece) -> Shift {
        Shift {
            schedule: schedule.to_string(),
            from: p.from,
            to: p.to,
            contacts: p.on_call.contacts.clone(),
            why: Why::of(&p.on_call.source),
        }
    }
}

/// Who is on call for one schedule at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NowView {
    pub schedule: String,
    pub time_zone: String,
    #[serde(serialize_with = "ser_time")]
    pub at: i64,
    pub contacts: Vec<String>,
    #[serde(flatten)]
    pub why: Why,
    #[serde(serialize_with = "ser_opt_time")]
    pub since: Option<i64>,
    #[serde(serialize_with = "ser_opt_time")]
    pub until: Option<i64>,
}

impl NowView {
    pub fn of(schedule: &str, time_zone: &str, at: i64, c: &Current) -> NowView {
        let OnCall { contacts, source } = &c.on_call;
        NowView {
            schedule: schedule.to_string(),
            time_zone: time_zone.to_string(),
            at,
            contacts: contacts.clone(),
            why: Why::of(source),
            since: c.since,
            until: c.until,
        }
    }
}

/// An override as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OverrideView {
    pub id: i64,
    pub schedule: String,
    pub contact: String,
    #[serde(serialize_with = "ser_time")]
    pub from: i64,
    #[serde(serialize_with = "ser_time")]
    pub to: i64,
    #[serde(serialize_with = "ser_time")]
    pub created_at: i64,
}

impl OverrideView {
    /// The override as the schedule logic uses it.
    pub fn rule(&self) -> Override {
        Override {
            id: self.id,
            contact: self.contact.clone(),
            from: self.from,
            to: self.to,
        }
    }
}
