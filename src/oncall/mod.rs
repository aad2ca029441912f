//! On-call schedules as pure functions: from a schedule, its overrides and
//! an instant (Unix seconds, always an argument: no clock here) to who is
//! on call, and to the final shifts of a range. Wall-clock arithmetic is
//! jiff's, on the system's tz database; a local time that does not exist
//! (spring forward) means the instant the gap's length later, one that
//! exists twice (fall back) the first (RFC 5545's rule, jiff's
//! "compatible").
//!
//! Semantics (issue 18): a layer hands off at `start`, then every shift;
//! `d` and `w` shifts at the same wall-clock time every time, `h` shifts
//! after elapsed hours; the member on call is `contacts[k mod n]`, k the
//! handoffs after `start` up to the instant; before `start` the layer
//! covers nobody. `only` windows restrict a layer (`to <= from` crosses
//! midnight and belongs to the day it starts; `from == to` is the whole
//! day). The last layer that covers an instant decides; an override active
//! then replaces that (the latest created wins); if nobody remains, the
//! fallback; else nobody.

pub mod config;
pub mod ical;
pub mod view;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// A layer's shift length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftLen {
    /// Elapsed hours.
    Hours(u32),
    /// Days at the same wall-clock time (a week is 7).
    Days(u32),
}

/// Most units in a shift (about 27 years of days).
const MAX_SHIFT: u32 = 10_000;

impl ShiftLen {
    /// `Nh`, `Nd` or `Nw`, N from 1.
    pub fn parse(s: &str) -> Result<ShiftLen, String> {
        let bad = || format!("{s:?}: use Nh, Nd or Nw with N from 1 to {MAX_SHIFT}");
        let (n, unit) = s.split_at(s.len().saturating_sub(1));
        let n: u32 = n.parse().map_err(|_| bad())?;
        if n == 0 || n > MAX_SHIFT {
            return Err(bad());
        }
        match unit {
            "h" => Ok(ShiftLen::Hours(n)),
            "d" => Ok(ShiftLen::Days(n)),
            "w" => Ok(ShiftLen::Days(n * 7)),
            _ => Err(bad()),
        }
    }
}

/// A daily window of a layer: on `days` (Monday first), from `from` to
/// `to` local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: [bool; 7],
    pub from: Time,
    pub to: Time,
}

/// A rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    pub contacts: Vec<String>,
    pub shift: ShiftLen,
    /// The first handoff, wall-clock in the schedule's zone.
    pub start: DateTime,
    /// Empty: always.
    pub only: Vec<Window>,
}

/// A schedule: layers in order (the last that covers an instant decides).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub tz: TimeZone,
    pub layers: Vec<Layer>,
    pub fallback: Vec<String>,
}

/// A person covering `[from, to)`; of several active at once, the one
/// created last (the highest id) wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub id: i64,
    pub contact: String,
    pub from: i64,
    pub to: i64,
}

/// Why someone is on call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Layer(String),
    Override(i64),
    Fallback,
    Nobody,
}

/// Who is on call at an instant, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnCall {
    pub contacts: Vec<String>,
    pub source: Source,
}

/// A piece of the final schedule: `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub from: i64,
    pub to: i64,
    pub on_call: OnCall,
}

fn add_days(d: Date, n: i64) -> Option<Date> {
    let n = i32::try_from(n).ok()?;
    d.checked_add(Span::new().try_days(n).ok()?).ok()
}

impl Schedule {
    /// The instant of a wall-clock time (gap: later by its length; fold:
    /// the first).
    pub fn instant(&self, dt: DateTime) -> i64 {
        self.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map_or(i64::MAX, |t| t.as_second())
    }

    /// The wall-clock time of an instant.
    pub fn local(&self, t: i64) -> DateTime {
        let ts = Timestamp::from_second(t).unwrap_or(if t < 0 {
            Timestamp::MIN
        } else {
            Timestamp::MAX
        });
        self.tz.to_datetime(ts)
    }

    /// The instant of `layer`'s handoff number `k` (0: its start).
    pub fn handoff(&self, layer: &Layer, k: i64) -> i64 {
        match layer.shift {
            ShiftLen::Hours(n) => self
                .instant(layer.start)
                .saturating_add(k.saturating_mul(i64::from(n) * 3600)),
            ShiftLen::Days(n) => add_days(layer.start.date(), k.saturating_mul(i64::from(n)))
                .map_or(i64::MAX, |d| {
                    self.instant(d.to_datetime(layer.start.time()))
                }),
        }
    }

    /// How many handoffs of `layer` came after its start up to `t`; `None`
    /// before its start.
    pub fn handoffs_until(&self, layer: &Layer, t: i64) -> Option<i64> {
        let h0 = self.handoff(layer, 0);
        if t < h0 {
            return None;
        }
        Some(match layer.shift {
            ShiftLen::Hours(n) => (t - h0) / (i64::from(n) * 3600),
            ShiftLen::Days(n) => {
                let days = layer
                    .start
                    .date()
                    .until(self.local(t).date())
                    .map_or(0, |s| i64::from(s.get_days()));
                // an estimate from the calendar, then exact against the
                // handoffs themselves (DST moves them by an hour or so)
                let mut k = days.div_euclid(i64::from(n)).max(0);
                while k > 0 && self.handoff(layer, k) > t {
                    k -= 1;
                }
                while self.handoff(layer, k + 1) <= t {
                    k += 1;
                }
                k
            }
        })
    }

    /// The occurrence of window `w` that starts on local date `d`.
    fn occurrence(&self, w: &Window, d: Date) -> (i64, i64) {
        let begin = self.instant(d.to_datetime(w.from));
        let end_day = if w.to <= w.from {
            add_days(d, 1).unwrap_or(d)
        } else {
            d
        };
        (begin, self.instant(end_day.to_datetime(w.to)))
    }

    /// Does `layer`'s `only` let it cover `t`?
    pub fn in_windows(&self, layer: &Layer, t: i64) -> bool {
        if layer.only.is_empty() {
            return true;
        }
        let today = self.local(t).date();
        // a window is at most 25 hours: one that covers t starts today or
        // the day before (two days before, across a 25-hour day, at most)
        (-2..=0).filter_map(|o| add_days(today, o)).any(|d| {
            let wd = d.weekday().to_monday_zero_offset() as usize;
            layer.only.iter().any(|w| {
                w.days[wd] && {
                    let (b, e) = self.occurrence(w, d);
                    b <= t && t < e
                }
            })
        })
    }

    /// Who is on call at `t`.
    pub fn on_call(&self, overrides: &[Override], t: i64) -> OnCall {
        if let Some(o) = overrides
            .iter()
            .filter(|o| o.from <= t && t < o.to)
            .max_by_key(|o| o.id)
        {
            return OnCall {
                contacts: vec![o.contact.clone()],
                source: Source::Override(o.id),
            };
        }
        for layer in self.layers.iter().rev() {
            if layer.contacts.is_empty() || !self.in_windows(layer, t) {
                continue;
            }
            if let Some(k) = self.handoffs_until(layer, t) {
                let n = layer.contacts.len() as i64;
                return OnCall {
                    contacts: vec![layer.contacts[k.rem_euclid(n) as usize].clone()],
                    source: Source::Layer(layer.name.clone()),
                };
            }
        }
        if self.fallback.is_empty() {
            OnCall {
                contacts: Vec::new(),
                source: Source::Nobody,
            }
        } else {
            OnCall {
                contacts: self.fallback.clone(),
                source: Source::Fallback,
            }
        }
    }

    /// Every instant in `(from, to)` where who is on call may change:
    /// handoffs, window edges, override edges.
    fn cuts(&self, overrides: &[Override], from: i64, to: i64) -> Vec<i64> {
        let mut cuts = Vec::new();
        for layer in &self.layers {
            let mut k = self.handoffs_until(layer, from).unwrap_or(0);
            loop {
                let h = self.handoff(layer, k);
                if h >= to {
                    break;
                }
                cuts.push(h);
                k += 1;
            }
            if layer.only.is_empty() {
                continue;
            }
            let (first, last) = (self.local(from).date(), self.local(to).date());
            let mut d = add_days(first, -2).unwrap_or(first);
            while d <= last {
                let wd = d.weekday().to_monday_zero_offset() as usize;
                for w in layer.only.iter().filter(|w| w.days[wd]) {
                    let (b, e) = self.occurrence(w, d);
                    cuts.extend([b, e]);
                }
                match add_days(d, 1) {
                    Some(n) => d = n,
                    None => break,
                }
            }
        }
        for o in overrides {
            cuts.extend([o.from, o.to]);
        }
        cuts.retain(|&c| from < c && c < to);
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }

    /// The final schedule over `[from, to)`: who is on call, piece by
    /// piece, adjacent pieces of the same people merged.
    pub fn pieces(&self, overrides: &[Override], from: i64, to: i64) -> Vec<Piece> {
        let mut out: Vec<Piece> = Vec::new();
        if from >= to {
            return out;
        }
        // only the overrides that touch the range take part
        let overrides: Vec<Override> = overrides
            .iter()
            .filter(|o| o.from < to && o.to > from)
            .cloned()
            .collect();
        let overrides = &overrides[..];
        let cuts = self.cuts(overrides, from, to);
        let starts = std::iter::once(from).chain(cuts.iter().copied());
        let ends = cuts.iter().copied().chain(std::iter::once(to));
        for (s, e) in starts.zip(ends) {
            let who = self.on_call(overrides, s);
            match out.last_mut() {
                Some(last) if last.on_call.contacts == who.contacts => last.to = e,
                _ => out.push(Piece {
                    from: s,
                    to: e,
                    on_call: who,
                }),
            }
        }
        out
    }
}

impl Schedule {
    /// Everyone who could take a call at `t`, in the order to try them:
    /// the override's person, then each layer's that covers `t` from the
    /// top layer down, then the fallback; each person once. The first is
    /// who [`Schedule::on_call`] names (the first of the fallback when it
    /// decides); the second is whom an on-call line rings next.
    pub fn candidates(&self, overrides: &[Override], t: i64) -> Vec<(String, Source)> {
        let mut out: Vec<(String, Source)> = Vec::new();
        let mut add = |c: &str, s: Source| {
            if !out.iter().any(|(x, _)| x == c) {
                out.push((c.to_string(), s));
            }
        };
        if let Some(o) = overrides
            .iter()
            .filter(|o| o.from <= t && t < o.to)
            .max_by_key(|o| o.id)
        {
            add(&o.contact, Source::Override(o.id));
        }
        for layer in self.layers.iter().rev() {
            if layer.contacts.is_empty() || !self.in_windows(layer, t) {
                continue;
            }
            if let Some(k) = self.handoffs_until(layer, t) {
                let n = layer.contacts.len() as i64;
                add(
                    &layer.contacts[k.rem_euclid(n) as usize],
                    Source::Layer(layer.name.clone()),
                );
            }
        }
        for c in &self.fallback {
            add(c, Source::Fallback);
        }
        out
    }
}

/// Who is on call at an instant, since when and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub on_call: OnCall,
    /// When these people came on call (`None`: more than a year ago).
    pub since: Option<i64>,
    /// When they go off call (`None`: not within a year).
    pub until: Option<i64>,
}

/// How far [`Schedule::current`] looks back and ahead, step by step (most
/// shifts end within a day or a week; few schedules need the year).
const LOOK: [i64; 4] = [86_400, 8 * 86_400, 36 * 86_400, 367 * 86_400];

impl Schedule {
    /// Who is on call at `t` (as [`Schedule::on_call`]), and the edges of
    /// that person's merged shift.
    pub fn current(&self, overrides: &[Override], t: i64) -> Current {
        let on_call = self.on_call(overrides, t);
        let since = LOOK.iter().find_map(|&span| {
            let from = t.saturating_sub(span);
            let p = self.pieces(overrides, from, t.saturating_add(1));
            p.last().filter(|p| p.from > from).map(|p| p.from)
        });
        let until = LOOK.iter().find_map(|&span| {
            let to = t.saturating_add(span);
            let p = self.pieces(overrides, t, to);
            p.first().filter(|p| p.to < to).map(|p| p.to)
        });
        Current {
            on_call,
            since,
            until,
        }
    }

    /// The gaps (nobody on call) in `[from, to)`.
    pub fn gaps(&self, overrides: &[Override], from: i64, to: i64) -> Vec<Piece> {
        let mut p = self.pieces(overrides, from, to);
        p.retain(|p| p.on_call.contacts.is_empty());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    /// Zones with rules that punish hand-written arithmetic (30-minute
    /// DST, +05:45, +12:45, DST at midnight) and the usual ones.
    const ODD_ZONES: [&str; 7] = [
        "Europe/Moscow",
        "America/New_York",
        "Europe/Berlin",
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        "America/Santiago",
        "Pacific/Chatham",
    ];

    fn layer(contacts: &[&str], shift: &str, start: DateTime) -> Layer {
        Layer {
            name: "l".into(),
            contacts: contacts.iter().map(|s| s.to_string()).collect(),
            shift: ShiftLen::parse(shift).unwrap(),
            start,
            only: Vec::new(),
        }
    }

    fn schedule(zone: &str, layers: Vec<Layer>) -> Schedule {
        Schedule {
            tz: TimeZone::get(zone).unwrap(),
            layers,
            fallback: Vec::new(),
        }
    }

    fn at(s: &Schedule, dt: DateTime) -> i64 {
        s.instant(dt)
    }

    fn who(s: &Schedule, t: i64) -> Option<String> {
        s.on_call(&[], t).contacts.first().cloned()
    }

    #[test]
    fn shift_lengths() {
        assert_eq!(ShiftLen::parse("12h"), Ok(ShiftLen::Hours(12)));
        assert_eq!(ShiftLen::parse("1d"), Ok(ShiftLen::Days(1)));
        assert_eq!(ShiftLen::parse("2w"), Ok(ShiftLen::Days(14)));
        for bad in ["", "h", "0d", "1m", "-1d", "1.5d", "99999d", "1 d"] {
            assert!(ShiftLen::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weekly_handoffs_keep_their_wall_clock_time_across_dst() {
        // Berlin: summer time starts 2026-03-29, ends 2026-10-25
        let s = schedule(
            "Europe/Berlin",
            vec![layer(
                &["ivan", "petr"],
                "1w",
                date(2026, 3, 23).at(10, 0, 0, 0),
            )],
        );
        let l = &s.layers[0];
        for k in 0..40 {
            let local = s.local(s.handoff(l, k));
            assert_eq!(local.time(), Time::constant(10, 0, 0, 0), "handoff {k}");
        }
        assert_eq!(
            who(&s, at(&s, date(2026, 3, 30).at(9, 59, 0, 0))),
            Some("ivan".into())
        );
        assert_eq!(
            who(&s, at(&s, date(2026, 3, 30).at(10, 0, 0, 0))),
            Some("petr".into())
        );
        // before the start: nobody
        assert_eq!(who(&s, at(&s, date(2026, 3, 23).at(9, 0, 0, 0))), None);
        // hourly shifts are elapsed hours: 23 of them on the short day
        let h = schedule(
            "Europe/Berlin",
            vec![layer(&["a", "b"], "24h", date(2026, 3, 28).at(12, 0, 0, 0))],
        );
        let t = h.handoff(&h.layers[0], 1);
        assert_eq!(h.local(t), date(2026, 3, 29).at(13, 0, 0, 0));
    }

    #[test]
    fn a_start_in_the_gap_is_later_by_the_gap_and_in_the_fold_the_first() {
        let s = schedule("Europe/Berlin", vec![]);
        let gap = s.instant(date(2026, 3, 29).at(2, 30, 0, 0));
        assert_eq!(s.local(gap), date(2026, 3, 29).at(3, 30, 0, 0));
        let fold = s.instant(date(2026, 10, 25).at(2, 30, 0, 0));
        // the first 02:30 is still summer time (+02:00): 00:30 UTC
        assert_eq!(
            fold,
            at(&s, date(2026, 10, 25).at(0, 0, 0, 0)) + 2 * 3600 + 1800
        );
        let utc = schedule("UTC", vec![]);
        assert_eq!(utc.local(fold), date(2026, 10, 25).at(0, 30, 0, 0));
        // Lord Howe moves by 30 minutes
        let lh = schedule("Australia/Lord_Howe", vec![]);
        let t = lh.instant(date(2026, 10, 4).at(2, 15, 0, 0));
        assert_eq!(lh.local(t), date(2026, 10, 4).at(2, 45, 0, 0));
    }

    #[test]
    fn windows_cross_midnight_and_belong_to_the_day_they_start() {
        let mut nights = layer(&["n1", "n2"], "1d", date(2026, 11, 30).at(20, 0, 0, 0));
        nights.only = vec![Window {
            days: [true, true, true, true, true, false, false],
            from: Time::constant(20, 0, 0, 0),
            to: Time::constant(8, 0, 0, 0),
        }];
        let s = Schedule {
            fallback: vec!["boss".into()],
            ..schedule(
                "Europe/Moscow",
                vec![
                    layer(
                        &["ivan", "petr", "olga"],
                        "1w",
                        date(2026, 11, 30).at(10, 0, 0, 0),
                    ),
                    nights,
                ],
            )
        };
        let w = |d: Date, h, m| who(&s, at(&s, d.at(h, m, 0, 0)));
        // Monday day: the weekly layer; Monday night: nights (n1)
        assert_eq!(w(date(2026, 11, 30), 12, 0), Some("ivan".into()));
        assert_eq!(w(date(2026, 11, 30), 21, 0), Some("n1".into()));
        assert_eq!(w(date(2026, 12, 1), 7, 59), Some("n1".into()));
        assert_eq!(w(date(2026, 12, 1), 8, 0), Some("ivan".into()));
        // Friday night into Saturday is Friday's (the fifth daily handoff,
        // k = 4: n1); Saturday night is not covered
        assert_eq!(w(date(2026, 12, 5), 3, 0), Some("n1".into()));
        assert_eq!(w(date(2026, 12, 5), 21, 0), Some("ivan".into()));
        // before every start: the fallback
        let early = s.on_call(&[], at(&s, date(2026, 11, 29).at(12, 0, 0, 0)));
        assert_eq!(
            (early.contacts, early.source),
            (vec!["boss".to_string()], Source::Fallback)
        );
        // an override replaces, the latest created wins
        let t = at(&s, date(2026, 12, 1).at(12, 0, 0, 0));
        let o = |id, c: &str| Override {
            id,
            contact: c.into(),
            from: t - 3600,
            to: t + 3600,
        };
        let got = s.on_call(&[o(1, "olga"), o(2, "anna")], t);
        assert_eq!(
            (got.contacts, got.source),
            (vec!["anna".to_string()], Source::Override(2))
        );
    }

    #[test]
    fn candidates_are_the_override_then_the_layers_top_down_then_the_fallback() {
        let mut nights = layer(&["n1", "n2"], "1d", date(2026, 11, 30).at(20, 0, 0, 0));
        nights.name = "nights".into();
        nights.only = vec![Window {
            days: [true; 7],
            from: Time::constant(20, 0, 0, 0),
            to: Time::constant(8, 0, 0, 0),
        }];
        let mut weekly = layer(&["ivan", "petr"], "1w", date(2026, 11, 30).at(10, 0, 0, 0));
        weekly.name = "weekly".into();
        let s = Schedule {
            fallback: vec!["boss".into(), "ivan".into()],
            ..schedule("Europe/Moscow", vec![weekly, nights])
        };
        let t = s.instant(date(2026, 11, 30).at(21, 0, 0, 0));
        let o = [Override {
            id: 4,
            contact: "olga".into(),
            from: t - 60,
            to: t + 60,
        }];
        let names = |v: Vec<(String, Source)>| v.into_iter().map(|(c, _)| c).collect::<Vec<_>>();
        assert_eq!(names(s.candidates(&o, t)), ["olga", "n1", "ivan", "boss"]);
        assert_eq!(names(s.candidates(&[], t)), ["n1", "ivan", "boss"]);
        // the first is always who is on call
        for dt in [-86_400, 0, 3600 * 12] {
            let c = s.candidates(&o, t + dt);
            assert_eq!(Some(&c[0].0), s.on_call(&o, t + dt).contacts.first());
        }
        // before every start: the fallback, in order
        let early = s.instant(date(2026, 11, 1).at(0, 0, 0, 0));
        assert_eq!(names(s.candidates(&[], early)), ["boss", "ivan"]);
    }

    #[test]
    fn from_equal_to_is_the_whole_day_of_23_or_25_hours() {
        let mut l = layer(&["x"], "1d", date(2026, 3, 1).at(0, 0, 0, 0));
        l.only = vec![Window {
            days: [false, false, false, false, false, false, true],
            from: Time::constant(9, 0, 0, 0),
            to: Time::constant(9, 0, 0, 0),
        }];
        let s = schedule("Europe/Berlin", vec![l]);
        // Sunday 2026-03-29 (23 hours long): 09:00 to Monday 09:00
        let p = s.pieces(
            &[],
            at(&s, date(2026, 3, 28).at(0, 0, 0, 0)),
            at(&s, date(2026, 4, 1).at(0, 0, 0, 0)),
        );
        let covered: Vec<_> = p
            .iter()
            .filter(|p| !p.on_call.contacts.is_empty())
            .collect();
        assert_eq!(covered.len(), 1);
        assert_eq!(covered[0].to - covered[0].from, 24 * 3600);
        assert_eq!(s.local(covered[0].from), date(2026, 3, 29).at(9, 0, 0, 0));
    }

    /// The rotation index by walking the handoffs one by one as time goes
    /// on (the walk only moves forward, from the start).
    struct Walk {
        k: Option<i64>,
    }

    impl Walk {
        fn at(&mut self, s: &Schedule, l: &Layer, t: i64) -> Option<i64> {
            if self.k.is_none() && t >= s.handoff(l, 0) {
                self.k = Some(0);
            }
            if let Some(k) = self.k.as_mut() {
                while s.handoff(l, *k + 1) <= t {
                    *k += 1;
                }
            }
            self.k
        }
    }

    #[test]
    fn handoffs_and_pieces_agree_with_a_walk_in_odd_zones() {
        use proptest::prelude::*;
        let zones = ODD_ZONES;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 48,
            ..ProptestConfig::default()
        });
        let strategy = (
            0..zones.len(),
            prop_oneof![1u32..=3, 6u32..=30],
            prop_oneof![Just("h"), Just("d"), Just("w")],
            0i32..120,
            0i8..24,
            prop_oneof![Just(0i8), Just(30)],
            proptest::collection::vec((0usize..7, 0i8..24, 0i8..24), 0..3),
            proptest::collection::vec((0i64..60 * 86400, 1i64..3 * 86400), 0..4),
        );
        runner
            .run(&strategy, |(z, n, unit, day, hour, minute, wins, ovs)| {
                let start = date(2026, 1, 1)
                    .checked_add(Span::new().days(day))
                    .unwrap()
                    .at(hour, minute, 0, 0);
                let mut l = layer(&["a", "b", "c"], &format!("{n}{unit}"), start);
                for (d, f, t) in wins {
                    let mut days = [false; 7];
                    days[d] = true;
                    l.only.push(Window {
                        days,
                        from: Time::constant(f, 0, 0, 0),
                        to: Time::constant(t, 30, 0, 0),
                    });
                }
                // "z" below (always on from its start), "l" with its
                // windows on top: l decides inside them, z outside
                let base = schedule(zones[z], vec![layer(&["z"], "1d", start), l.clone()]);
                let s = Schedule {
                    fallback: vec!["fb".into()],
                    ..base
                };
                let from = s.instant(start) - 86400;
                let overrides: Vec<Override> = ovs
                    .iter()
                    .enumerate()
                    .map(|(i, (o, len))| Override {
                        id: i as i64,
                        contact: format!("o{i}"),
                        from: from + o,
                        to: from + o + len,
                    })
                    .collect();
                let to = from + 90 * 86400;
                let pieces = s.pieces(&overrides, from, to);
                prop_assert_eq!(pieces.first().map(|p| p.from), Some(from));
                prop_assert_eq!(pieces.last().map(|p| p.to), Some(to));
                // every minute (sampled every 7th): the pieces say what
                // on_call says, and the rotation index is the walked one
                let mut t = from;
                let mut i = 0;
                let mut walk = Walk { k: None };
                while t < to {
                    while pieces[i].to <= t {
                        i += 1;
                    }
                    prop_assert_eq!(
                        &pieces[i].on_call.contacts,
                        &s.on_call(&overrides, t).contacts
                    );
                    prop_assert_eq!(
                        s.handoffs_until(&s.layers[1], t),
                        walk.at(&s, &s.layers[1], t)
                    );
                    t += 7 * 60;
                }
                Ok(())
            })
            .unwrap();
    }

    /// A second implementation, as naive as it gets: every instant is
    /// judged on its own from the definitions (jiff's zoned arithmetic for
    /// the wall-clock, each window occurrence of the days around, the
    /// handoffs counted one by one), sharing no code with the one above.
    struct Naive<'a> {
        s: &'a Schedule,
        /// Per layer: handoffs counted so far (time only moves forward).
        k: Vec<i64>,
    }

    impl Naive<'_> {
        fn handoff(&self, l: &Layer, j: i64) -> i64 {
            match l.shift {
                ShiftLen::Hours(n) => {
                    l.start
                        .to_zoned(self.s.tz.clone())
                        .unwrap()
                        .timestamp()
                        .as_second()
                        + j * i64::from(n) * 3600
                }
                ShiftLen::Days(n) => l
                    .start
                    .checked_add(Span::new().days(j * i64::from(n)))
                    .unwrap()
                    .to_zoned(self.s.tz.clone())
                    .unwrap()
                    .timestamp()
                    .as_second(),
            }
        }

        fn covers(&self, l: &Layer, t: i64) -> bool {
            if l.only.is_empty() {
                return true;
            }
            let tz = &self.s.tz;
            let today = Timestamp::from_second(t)
                .unwrap()
                .to_zoned(tz.clone())
                .date();
            (0..4).any(|back| {
                let d = today.checked_sub(Span::new().days(back)).unwrap();
                let wd = d.weekday().to_monday_zero_offset() as usize;
                l.only.iter().any(|w| {
                    let b = d.to_datetime(w.from).to_zoned(tz.clone()).unwrap();
                    let end_day = if w.to <= w.from {
                        d.tomorrow().unwrap()
                    } else {
                        d
                    };
                    let e = end_day.to_datetime(w.to).to_zoned(tz.clone()).unwrap();
                    w.days[wd] && b.timestamp().as_second() <= t && t < e.timestamp().as_second()
                })
            })
        }

        fn who(&mut self, ovs: &[Override], t: i64) -> Vec<String> {
            let mut best: Option<&Override> = None;
            for o in ovs {
                if o.from <= t && t < o.to && best.is_none_or(|b| o.id > b.id) {
                    best = Some(o);
                }
            }
            if let Some(o) = best {
                return vec![o.contact.clone()];
            }
            for i in (0..self.s.layers.len()).rev() {
                let l = &self.s.layers[i];
                while self.handoff(l, self.k[i] + 1) <= t {
                    self.k[i] += 1;
                }
                if t < self.handoff(l, 0) || !self.covers(l, t) {
                    continue;
                }
                return vec![l.contacts[(self.k[i] % l.contacts.len() as i64) as usize].clone()];
            }
            self.s.fallback.clone()
        }
    }

    #[test]
    fn a_naive_minute_by_minute_walk_agrees_across_dst_in_odd_zones() {
        use proptest::prelude::*;
        let zones = ODD_ZONES;
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 28,
            ..ProptestConfig::default()
        });
        let strategy = (
            0..zones.len(),
            0usize..2,
            -9i64..3,
            prop_oneof![1u32..=3, 6u32..=30],
            prop_oneof![Just("h"), Just("d"), Just("w")],
            (0i8..24, prop_oneof![Just(0i8), Just(30)]),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<bool>(), 7),
                    (0i8..24, prop_oneof![Just(0i8), Just(30)]),
                    (0i8..24, prop_oneof![Just(0i8), Just(30)]),
                    any::<bool>(),
                ),
                0..3,
            ),
            proptest::collection::vec((0i64..10 * 86400, 60i64..2 * 86400), 0..4),
            any::<bool>(),
        );
        runner
            .run(
                &strategy,
                |(z, which, shift_days, n, unit, (hour, minute), wins, ovs, fallback)| {
                    let tz = TimeZone::get(zones[z]).unwrap();
                    // a DST change of 2026 in this zone (Kathmandu has none: a
                    // day of March), and the range around it
                    let jan = Timestamp::from_second(1_767_225_600).unwrap();
                    let change = tz
                        .following(jan)
                        .nth(which)
                        .map_or(1_773_000_000, |tr| tr.timestamp().as_second());
                    let change_day = tz
                        .to_datetime(Timestamp::from_second(change).unwrap())
                        .date();
                    let start = change_day
                        .checked_add(Span::new().days(shift_days))
                        .unwrap()
                        .at(hour, minute, 0, 0);
                    let mut l = layer(&["a", "b", "c"], &format!("{n}{unit}"), start);
                    for (days, (fh, fm), (th, tm), whole_day) in wins {
                        let mut d = [false; 7];
                        d.copy_from_slice(&days);
                        let from = Time::constant(fh, fm, 0, 0);
                        l.only.push(Window {
                            days: d,
                            from,
                            // from == to: the whole day
                            to: if whole_day {
                                from
                            } else {
                                Time::constant(th, tm, 0, 0)
                            },
                        });
                    }
                    let s = Schedule {
                        tz: tz.clone(),
                        layers: vec![layer(&["z", "y"], "1d", start), l],
                        fallback: if fallback { vec!["fb".into()] } else { vec![] },
                    };
                    let from = s.instant(start) - 86400;
                    let to = from + 12 * 86400;
                    let overrides: Vec<Override> = ovs
                        .iter()
                        .enumerate()
                        .map(|(i, (o, len))| Override {
                            id: i as i64,
                            contact: format!("o{i}"),
                            from: from + o,
                            to: from + o + len,
                        })
                        .collect();
                    let pieces = s.pieces(&overrides, from, to);
                    let mut naive = Naive {
                        s: &s,
                        k: vec![0; 2],
                    };
                    let mut i = 0;
                    let mut t = from;
                    while t < to {
                        while pieces[i].to <= t {
                            i += 1;
                        }
                        let want = naive.who(&overrides, t);
                        prop_assert_eq!(&s.on_call(&overrides, t).contacts, &want, "at {}", t);
                        prop_assert_eq!(&pieces[i].on_call.contacts, &want, "piece at {}", t);
                        t += 60;
                    }
                    Ok(())
                },
            )
            .unwrap();
    }
}
