//! The pager's on-call door: who is on call, shifts, gaps, feeds,
//! overrides and re-planning. The decisions are [`crate::oncall`]'s pure
//! functions; this reads the overrides, writes them, and settles the
//! spool for the alerts a change re-planned.

use std::collections::BTreeMap;

use super::{unix_now, Pager, PagerError};
use crate::alert::config::AlertsConfig;
use crate::alert::store::{PlannedCall, Replanned};
use crate::error::Invalid;
use crate::oncall::view::{NowView, OverrideView, Shift};
use crate::oncall::{ical, OnCall, Override, Source};

/// Calls due this soon are left as they are by a re-plan (Asterisk may be
/// starting them).
pub const REPLAN_MARGIN: i64 = 5;
/// Longest override.
pub const MAX_OVERRIDE: i64 = 366 * 86_400;
/// Longest range of shifts asked for at once.
pub const MAX_RANGE: i64 = 400 * 86_400;

/// Who `schedule` has on call at `t`, with `overrides` by schedule
/// (nobody for a schedule the config does not have).
pub fn on_call(
    cfg: &AlertsConfig,
    overrides: &BTreeMap<String, Vec<Override>>,
    schedule: &str,
    t: i64,
) -> OnCall {
    match cfg.schedules.get(schedule) {
        Some(s) => s.on_call(overrides.get(schedule).map_or(&[], |v| v), t),
        None => OnCall {
            contacts: Vec::new(),
            source: Source::Nobody,
        },
    }
}

/// What adding or removing an override did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OverrideChange {
    #[serde(rename = "override")]
    pub override_: OverrideView,
    /// The calls to come that now go to someone else.
    pub replanned: Vec<Replanned>,
    /// Alerts whose re-planned files could not all be settled yet (they
    /// are owed, and retried).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owed: Vec<String>,
}

/// What a re-plan did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReplanReport {
    pub replanned: Vec<Replanned>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owed: Vec<String>,
}

/// Someone an on-call line can ring.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reach {
    pub contact: String,
    pub number: String,
    /// The `call.channel` template rendered for the number: what `Dial`
    /// takes.
    pub dial: String,
    #[serde(flatten)]
    pub why: crate::oncall::view::Why,
}

/// Whom the on-call line of a schedule rings now, and next.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineRoute {
    pub first: Option<Reach>,
    pub next: Option<Reach>,
}

fn people(v: &[String]) -> String {
    if v.is_empty() {
        "nobody".into()
    } else {
        v.join(",")
    }
}

fn invalid(field: &'static str, message: String) -> PagerError {
    PagerError::Invalid(Invalid::new(field, message))
}

/// `contact` is one of the config's, else an error naming the field.
fn contact_named(cfg: &AlertsConfig, contact: &str) -> Result<(), PagerError> {
    if cfg.contacts.contains_key(contact) {
        return Ok(());
    }
    Err(invalid(
        "contact",
        format!(
            "no contact {:?} in the config",
            crate::escape_bytes(contact.as_bytes())
        ),
    ))
}

impl Pager {
    /// The overrides that end after `after`, by schedule, keeping only
    /// those whose schedule and contact the config has.
    pub(super) fn rules(
        &self,
        cfg: &AlertsConfig,
        after: i64,
    ) -> Result<BTreeMap<String, Vec<Override>>, PagerError> {
        let all = self.read(|s| s.overrides(None, after))?;
        let mut out: BTreeMap<String, Vec<Override>> = BTreeMap::new();
        for o in all {
            if cfg.schedules.contains_key(&o.schedule) && cfg.contacts.contains_key(&o.contact) {
                out.entry(o.schedule.clone()).or_default().push(o.rule());
            }
        }
        Ok(out)
    }

    fn schedule_named<'a>(
        cfg: &'a AlertsConfig,
        name: &str,
    ) -> Result<&'a crate::oncall::Schedule, PagerError> {
        cfg.schedules.get(name).ok_or_else(|| {
            invalid(
                "schedule",
                format!(
                    "no schedule {:?} in the config",
                    crate::escape_bytes(name.as_bytes())
                ),
            )
        })
    }

    /// Who is on call at `t` for `schedule` (every schedule: `None`), since
    /// when, until when, and why.
    pub fn on_call_now(&self, schedule: Option<&str>, t: i64) -> Result<Vec<NowView>, PagerError> {
        let cfg = self.config();
        if let Some(name) = schedule {
            Self::schedule_named(&cfg, name)?;
        }
        let rules = self.rules(&cfg, t - 367 * 86_400)?;
        Ok(cfg
            .schedules
            .iter()
            .filter(|(n, _)| schedule.is_none_or(|s| s == n.as_str()))
            .map(|(n, s)| {
                let c = s.current(rules.get(n).map_or(&[], |v| v), t);
                NowView::of(n, s.tz.iana_name().unwrap_or("UTC"), t, &c)
            })
            .collect())
    }

    /// The final shifts of `schedule` over `[from, to)` (with `contact`,
    /// only theirs), adjacent pieces of the same people merged.
    pub fn shifts(
        &self,
        schedule: &str,
        contact: Option<&str>,
        from: i64,
        to: i64,
    ) -> Result<Vec<Shift>, PagerError> {
        let cfg = self.config();
        let s = Self::schedule_named(&cfg, schedule)?;
        if let Some(c) = contact {
            contact_named(&cfg, c)?;
        }
        if from >= to {
            return Err(invalid("to", "must be after from".into()));
        }
        if to - from > MAX_RANGE {
            return Err(invalid(
                "to",
                format!("at most {} days after from", MAX_RANGE / 86_400),
            ));
        }
        let rules = self.rules(&cfg, from)?;
        let pieces = s.pieces(rules.get(schedule).map_or(&[], |v| v), from, to);
        Ok(pieces
            .iter()
            .filter(|p| contact.is_none_or(|c| p.on_call.contacts.iter().any(|x| x == c)))
            .map(|p| Shift::of(schedule, p))
            .collect())
    }

    /// The gaps (nobody on call) over the next `days` days from `from` of
    /// every schedule a chain uses.
    pub fn gaps(&self, from: i64, days: i64) -> Result<Vec<Shift>, PagerError> {
        let cfg = self.config();
        let mut used: Vec<&String> = cfg
            .chains
            .values()
            .flat_map(|c| c.steps.iter())
            .flat_map(|s| s.schedules.iter())
            .collect();
        used.sort();
        used.dedup();
        let to = from.saturating_add(days.saturating_mul(86_400));
        let rules = self.rules(&cfg, from)?;
        let mut out = Vec::new();
        for name in used {
            if let Some(s) = cfg.schedules.get(name) {
                for p in s.gaps(rules.get(name).map_or(&[], |v| v), from, to) {
                    out.push(Shift::of(name, &p));
                }
            }
        }
        Ok(out)
    }

    /// The iCalendar feed of `schedule`, or of `contact` across every
    /// schedule: from the start of the shift in force at `now` to
    /// [`ical::FEED_DAYS`] ahead.
    pub fn ical(
        &self,
        schedule: Option<&str>,
        contact: Option<&str>,
        now: i64,
    ) -> Result<String, PagerError> {
        let cfg = self.config();
        let names: Vec<String> = match schedule {
            Some(n) => {
                Self::schedule_named(&cfg, n)?;
                vec![n.to_string()]
            }
            None => cfg.schedules.keys().cloned().collect(),
        };
        // start where the shift in force began (so its UID is the same at
        // every refresh), at most 35 days back
        let from = now - 35 * 86_400;
        let to = now + ical::FEED_DAYS * 86_400;
        let mut shifts = Vec::new();
        for n in &names {
            let mut v = self.shifts(n, contact, from, to)?;
            v.retain(|s| s.to > now);
            shifts.extend(v);
        }
        shifts.sort_by_key(|s| s.from);
        let title = match (schedule, contact) {
            (Some(s), _) => format!("On call: {s}"),
            (None, Some(c)) => format!("On call: {c}"),
            (None, None) => "On call".to_string(),
        };
        Ok(ical::calendar(&title, &shifts, (from, to), contact, now))
    }

    /// Overrides of `schedule` (every one: `None`) that end after `after`.
    pub fn overrides(
        &self,
        schedule: Option<&str>,
        after: i64,
    ) -> Result<Vec<OverrideView>, PagerError> {
        if let Some(n) = schedule {
            Self::schedule_named(&self.config(), n)?;
        }
        self.read(|s| s.overrides(schedule, after))
    }

    /// Adds an override: `contact` covers `schedule` over `[from, to)`;
    /// then the calls to come are re-planned. Errors name the field and
    /// change nothing.
    pub fn add_override(
        &self,
        schedule: &str,
        contact: &str,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<OverrideChange, PagerError> {
        let cfg = self.config();
        Self::schedule_named(&cfg, schedule)?;
        contact_named(&cfg, contact)?;
        if from >= to {
            return Err(invalid("to", "must be after from".into()));
        }
        if to - from > MAX_OVERRIDE {
            return Err(invalid(
                "to",
                "an override lasts at most a year (366 days)".into(),
            ));
        }
        let o = self.write(|s| s.add_override(schedule, contact, from, to, now))?;
        let r = self.replan(now)?;
        Ok(OverrideChange {
            override_: o,
            replanned: r.replanned,
            owed: r.owed,
        })
    }

    /// Removes override `id` and re-plans; `None` when there is none.
    pub fn remove_override(&self, id: i64, now: i64) -> Result<Option<OverrideChange>, PagerError> {
        let Some(o) = self.write(|s| s.remove_override(id))? else {
            return Ok(None);
        };
        let r = self.replan(now)?;
        Ok(Some(OverrideChange {
            override_: o,
            replanned: r.replanned,
            owed: r.owed,
        }))
    }

    /// Re-plans the calls to come (due after `now` + [`REPLAN_MARGIN`]) of
    /// firing alerts whose schedule now names someone else: the old file
    /// removed, the new one published under a new name. `Ok` with the
    /// alerts whose files are still owed (retried like any debt).
    pub fn replan(&self, now: i64) -> Result<ReplanReport, PagerError> {
        let cfg = self.config();
        let rules = self.rules(&cfg, now)?;
        let _work = self.changes.enter(None);
        let number = |c: &str| cfg.contacts.get(c).map(|c| c.number.clone());
        let replanned = self.write(|s| {
            s.replan(now + REPLAN_MARGIN, now, |chain, round, step, at| {
                let st = cfg.chains.get(chain)?.steps.get(step as usize)?;
                if st.schedules.is_empty() {
                    return None;
                }
                let planned =
                    crate::alert::plan_step(st, round, step, 0, |sc| on_call(&cfg, &rules, sc, at));
                Some(
                    planned
                        .into_iter()
                        // a contact gone from the config cannot be called
                        .filter(|p| p.is_nobody() || number(&p.contact).is_some())
                        .map(|p| PlannedCall {
                            number: number(&p.contact).unwrap_or_default(),
                            plan: p,
                        })
                        .collect(),
                )
            })
        })?;
        let mut ids: Vec<&str> = replanned.iter().map(|r| r.alert_id.as_str()).collect();
        ids.sort();
        ids.dedup();
        let mut owed = Vec::new();
        for r in &replanned {
            let at = crate::timefmt::rfc3339(r.at).unwrap_or_default();
            log::info!(
                "alert {}: re-planned round {} step {} at {}: {} instead of {}",
                r.alert_id,
                r.round,
                r.step,
                at,
                people(&r.after),
                people(&r.before)
            );
            for sc in &r.nobody_on_call {
                log::warn!(
                    "alert {}: nobody is on call for schedule {sc} at {at} (round {} step {}); going on to the next step",
                    r.alert_id,
                    r.round,
                    r.step
                );
            }
        }
        for id in ids {
            if let Err(e) = self.sync(id) {
                log::warn!("{}", crate::error_chain(&e));
                owed.push(id.to_string());
            }
        }
        Ok(ReplanReport { replanned, owed })
    }

    /// Whom the on-call line of `schedule` rings at `now`: who is on call,
    /// then the next to try (the layer below, or the fallback).
    pub fn line_route(&self, schedule: &str, now: i64) -> Result<LineRoute, PagerError> {
        let cfg = self.config();
        let s = Self::schedule_named(&cfg, schedule)?;
        let rules = self.rules(&cfg, now)?;
        let mut reach = s
            .candidates(rules.get(schedule).map_or(&[], |v| v), now)
            .into_iter()
            .filter_map(|(c, why)| {
                let number = cfg.contacts.get(&c)?.number.clone();
                Some(Reach {
                    dial: cfg.call.channel.replace("{number}", &number),
                    contact: c,
                    number,
                    why: crate::oncall::view::Why::of(&why),
                })
            });
        Ok(LineRoute {
            first: reach.next(),
            next: reach.next(),
        })
    }

    /// Re-plans now (the receiver's start and SIGHUP, the command line).
    pub fn replan_now(&self) -> Result<ReplanReport, PagerError> {
        self.replan(unix_now())
    }
}
