//! Heartbeats (a dead man's switch) as a pure state machine: what a ping,
//! a timer run, a pause, a resume or a missing timer does to a heartbeat,
//! as a new record and the effects owed (a timer call file to publish or
//! remove, the alert `hb-NAME` to raise or resolve). No I/O, no clock: the
//! instant is an argument. The pager carries the effects out under the
//! heartbeat's lock and keeps them in the database until they are done.
//!
//! The timer is a call file in Asterisk's spool, due at the deadline (last
//! ping + timeout): a ping only moves the deadline in the database; when
//! the timer runs, it either finds a later deadline (a ping came: the next
//! timer is published under a new name, since a pending file is never
//! postponed by replacing it) or raises the alert. So Asterisk wakes once
//! per timeout period, however often pings come, and the switch holds with
//! no daemon of ours running. As in GoAlert, an expired heartbeat pages
//! once per expiry: not again until it has recovered and expired again.

use serde::Serialize;

/// Where a heartbeat stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HbState {
    /// Configured, never pinged: not armed, never pages.
    NeverPinged,
    /// Pinged within its timeout; armed.
    Healthy,
    /// The deadline passed: its alert was raised.
    Expired,
    /// Maintenance: neither pages nor needs pings.
    Paused,
}

impl HbState {
    pub fn as_str(self) -> &'static str {
        match self {
            HbState::NeverPinged => "never_pinged",
            HbState::Healthy => "healthy",
            HbState::Expired => "expired",
            HbState::Paused => "paused",
        }
    }

    pub fn parse(s: &str) -> Option<HbState> {
        Some(match s {
            "never_pinged" => HbState::NeverPinged,
            "healthy" => HbState::Healthy,
            "expired" => HbState::Expired,
            "paused" => HbState::Paused,
            _ => return None,
        })
    }
}

impl std::fmt::Display for HbState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A heartbeat as stored: its state, and what is still owed to the spool
/// and to its alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hb {
    pub state: HbState,
    pub last_ping: Option<i64>,
    /// When it expires (armed: last ping + timeout).
    pub deadline: Option<i64>,
    /// The timer call file that should be pending (armed), and when due.
    pub timer: Option<(String, i64)>,
    /// The timer is in `outgoing/` (else its publish is owed).
    pub timer_published: bool,
    /// Timer files owed a removal (a pause, a disarm).
    pub remove: Vec<String>,
    /// The alert is owed a raise (expired) or a resolve (recovered).
    pub raise_owed: bool,
    pub resolve_owed: bool,
    /// Timers published so far (names the next one).
    pub seq: u32,
}

impl Default for Hb {
    fn default() -> Hb {
        Hb {
            state: HbState::NeverPinged,
            last_ping: None,
            deadline: None,
            timer: None,
            timer_published: false,
            remove: Vec::new(),
            raise_owed: false,
            resolve_owed: false,
            seq: 0,
        }
    }
}

/// What a timer run concluded (`ALERT_STATUS` of the AGI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A ping came since: the next timer is armed.
    Alive,
    /// The deadline passed: the alert is raised.
    Raised,
    /// Nothing to do (paused, expired already, never pinged, unknown).
    Idle,
}

impl Verdict {
    pub fn status(self) -> &'static str {
        match self {
            Verdict::Alive => "ALIVE",
            Verdict::Raised => "RAISED",
            Verdict::Idle => "IDLE",
        }
    }
}

/// The alert id of heartbeat `name`.
pub fn alert_id(name: &str) -> String {
    format!("hb-{name}")
}

/// The file name of timer number `seq` of heartbeat `name` (a new name
/// each time: Asterisk runs a pending file at the time it first saw it).
pub fn timer_file(name: &str, seq: u32) -> String {
    format!("heartbeat-{name}-{seq}.call")
}

/// Is `file` one of heartbeat `name`'s timers?
pub fn is_timer_of(name: &str, file: &str) -> bool {
    file.strip_prefix(&format!("heartbeat-{name}-"))
        .and_then(|r| r.strip_suffix(".call"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl Hb {
    /// Arms a new timer due at `at` (a new file; the one pending, if any,
    /// is owed a removal).
    fn arm(&mut self, name: &str, at: i64) {
        if let Some((old, _)) = self.timer.take() {
            if self.timer_published {
                self.remove.push(old);
            }
        }
        self.seq += 1;
        self.timer = Some((timer_file(name, self.seq), at));
        self.timer_published = false;
    }

    fn disarm(&mut self) {
        if let Some((old, _)) = self.timer.take() {
            if self.timer_published {
                self.remove.push(old);
            }
        }
        self.timer_published = false;
    }

    /// True when a timer should be pending.
    pub fn armed(&self) -> bool {
        self.state == HbState::Healthy
    }
}

/// A ping at `now`. Never pinged or healthy: the deadline moves (the
/// pending timer is left alone; its run re-arms); no timer (or
/// `timer_present` false: removed by hand, lost): one is armed. Expired:
/// recovery, the alert is owed a resolve and the timer is armed again.
/// Paused: only the time of the ping is kept.
pub fn ping(hb: &Hb, name: &str, timeout: i64, now: i64, timer_present: bool) -> Hb {
    let mut h = hb.clone();
    h.last_ping = Some(now);
    match h.state {
        HbState::Paused => return h,
        HbState::Expired => {
            h.resolve_owed = true;
            h.raise_owed = false;
        }
        HbState::NeverPinged | HbState::Healthy => {}
    }
    h.state = HbState::Healthy;
    h.deadline = Some(now + timeout);
    let lost = h.timer_published && !timer_present;
    if h.timer.is_none() || lost {
        if lost {
            // the file is gone: nothing to remove
            h.timer_published = false;
            h.timer = None;
        }
        h.arm(name, now + timeout);
    }
    h
}

/// A run of the timer at `now`. Healthy with the deadline passed: expired,
/// the alert owed a raise, no timer. Healthy with a later deadline (a ping
/// came): the next timer armed at the deadline. Anything else: nothing.
pub fn timer_run(hb: &Hb, name: &str, now: i64) -> (Hb, Verdict) {
    let mut h = hb.clone();
    if h.state != HbState::Healthy {
        return (h, Verdict::Idle);
    }
    let deadline = h.deadline.unwrap_or(now);
    // the file that ran is Asterisk's to delete (it is running): forget it
    if h.timer.as_ref().is_some_and(|(_, at)| *at <= now) {
        h.timer = None;
        h.timer_published = false;
    }
    if now >= deadline {
        h.state = HbState::Expired;
        h.raise_owed = true;
        h.resolve_owed = false;
        h.disarm();
        (h, Verdict::Raised)
    } else {
        if h.timer.as_ref().is_none_or(|(_, at)| *at != deadline) {
            h.arm(name, deadline);
        }
        (h, Verdict::Alive)
    }
}

/// Pause: no pages, no pings needed; the timer is removed. An expired
/// heartbeat's alert is resolved (pausing says the silence is known; a
/// resumed heartbeat is healthy, so no later ping would resolve it).
pub fn pause(hb: &Hb) -> Hb {
    let mut h = hb.clone();
    if h.state == HbState::Expired {
        h.resolve_owed = true;
        h.raise_owed = false;
    }
    h.state = HbState::Paused;
    h.deadline = None;
    h.disarm();
    h
}

/// Resume: armed again from `now`, as if pinged now.
pub fn resume(hb: &Hb, name: &str, timeout: i64, now: i64) -> Hb {
    let mut h = hb.clone();
    if h.state != HbState::Paused {
        return h;
    }
    h.state = HbState::Healthy;
    h.deadline = Some(now + timeout);
    h.arm(name, now + timeout);
    h
}

/// The timer of an armed heartbeat is not in `outgoing/` (removed by hand,
/// a crash, a restore): a new one, due at the deadline (at once when it
/// has passed: when in doubt, call).
pub fn repair(hb: &Hb, name: &str, now: i64) -> Hb {
    let mut h = hb.clone();
    if !h.armed() {
        return h;
    }
    h.timer = None;
    h.timer_published = false;
    let at = h.deadline.unwrap_or(now).max(now);
    h.arm(name, at);
    h
}

/// The heartbeat left the config: disarmed (its timer removed).
pub fn removed(hb: &Hb) -> Hb {
    let mut h = hb.clone();
    h.disarm();
    h.raise_owed = false;
    h.resolve_owed = false;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 300;

    fn pinged(at: i64) -> Hb {
        ping(&Hb::default(), "prom", T, at, false)
    }

    #[test]
    fn armed_at_the_first_ping_with_one_timer_at_the_deadline() {
        let h = Hb::default();
        assert_eq!(h.state, HbState::NeverPinged);
        assert!(!h.armed());
        let h = pinged(1000);
        assert_eq!(h.state, HbState::Healthy);
        assert_eq!(h.deadline, Some(1300));
        assert_eq!(h.timer, Some(("heartbeat-prom-1.call".into(), 1300)));
        assert!(!h.timer_published);
    }

    #[test]
    fn pings_move_the_deadline_without_a_file_and_the_run_re_arms() {
        let mut h = pinged(1000);
        h.timer_published = true;
        for t in 1001..1200 {
            h = ping(&h, "prom", T, t, true);
        }
        // no new timer for all those pings
        assert_eq!(h.timer, Some(("heartbeat-prom-1.call".into(), 1300)));
        assert_eq!(h.deadline, Some(1499));
        // the timer runs at 1300: alive, the next one at 1499, a new name
        let (h, v) = timer_run(&h, "prom", 1300);
        assert_eq!(v, Verdict::Alive);
        assert_eq!(h.timer, Some(("heartbeat-prom-2.call".into(), 1499)));
        assert!(h.remove.is_empty(), "the running file is Asterisk's");
        let mut h = h;
        h.timer_published = true;
        // no ping since: at 1499 it expires, once
        let (h, v) = timer_run(&h, "prom", 1499);
        assert_eq!(v, Verdict::Raised);
        assert_eq!(
            (h.state, h.raise_owed, h.timer.clone()),
            (HbState::Expired, true, None)
        );
        let (h2, v) = timer_run(&h, "prom", 1600);
        assert_eq!(v, Verdict::Idle);
        assert_eq!(h2, h, "an expired heartbeat pages once per expiry");
    }

    #[test]
    fn a_ping_while_expired_recovers_resolves_and_re_arms() {
        let mut h = pinged(1000);
        h.timer_published = true;
        let (mut h, _) = timer_run(&h, "prom", 1300);
        h.raise_owed = false; // raised
        let h = ping(&h, "prom", T, 2000, false);
        assert_eq!(h.state, HbState::Healthy);
        assert!(h.resolve_owed && !h.raise_owed);
        assert_eq!(h.timer, Some(("heartbeat-prom-2.call".into(), 2300)));
    }

    #[test]
    fn pause_removes_the_timer_and_resume_re_arms_from_now() {
        let mut h = pinged(1000);
        h.timer_published = true;
        let p = pause(&h);
        assert_eq!(p.state, HbState::Paused);
        assert_eq!(p.timer, None);
        assert_eq!(p.remove, ["heartbeat-prom-1.call"]);
        // paused: a ping is only noted; a timer run does nothing
        let p2 = ping(&p, "prom", T, 1500, false);
        assert_eq!(
            (p2.state, p2.last_ping, p2.timer.clone()),
            (HbState::Paused, Some(1500), None)
        );
        assert_eq!(timer_run(&p2, "prom", 5000).1, Verdict::Idle);
        let r = resume(&p2, "prom", T, 9000);
        assert_eq!((r.state, r.deadline), (HbState::Healthy, Some(9300)));
        assert_eq!(r.timer, Some(("heartbeat-prom-2.call".into(), 9300)));
    }

    #[test]
    fn a_missing_timer_is_put_back_never_silently_disarmed() {
        let mut h = pinged(1000);
        h.timer_published = true;
        // the next ping notices the file is gone
        let p = ping(&h, "prom", T, 1100, false);
        assert_eq!(p.timer, Some(("heartbeat-prom-2.call".into(), 1400)));
        assert!(p.remove.is_empty());
        // a repair before the deadline: due at the deadline; after: now
        assert_eq!(repair(&h, "prom", 1200).timer.unwrap().1, 1300);
        assert_eq!(repair(&h, "prom", 1900).timer.unwrap().1, 1900);
        // not armed: nothing to repair
        assert_eq!(repair(&pause(&h), "prom", 1900).timer, None);
        let gone = removed(&h);
        assert_eq!(
            (gone.timer.clone(), gone.remove.clone()),
            (None, vec!["heartbeat-prom-1.call".to_string()])
        );
    }

    #[test]
    fn timer_names() {
        assert!(is_timer_of("prom", "heartbeat-prom-12.call"));
        assert!(!is_timer_of("prom", "heartbeat-prom-x-12.call"));
        assert!(!is_timer_of("prom", "heartbeat-prometheus-1.call"));
        assert!(crate::callfile::spool::valid_name(&timer_file("a-b_c", 7)));
        assert_eq!(alert_id("backup"), "hb-backup");
    }

    /// A world: the clock, Asterisk's spool (pending timer files, each
    /// run at its due time and then deleted, as Asterisk does), and the
    /// pager carrying out what each transition owes. Random pings, pauses,
    /// resumes, timers removed by hand, and time passing: while armed
    /// exactly one timer is pending and due no later than the deadline; an
    /// expiry pages exactly once and never before the deadline; a
    /// heartbeat left without pings always ends up paging.
    #[test]
    fn in_any_order_of_events_the_switch_holds() {
        use proptest::prelude::*;
        #[derive(Debug, Clone)]
        enum Ev {
            Ping(i64),
            Wait(i64),
            Pause,
            Resume,
            Lose,
        }
        let ev = prop_oneof![
            4 => (1i64..400).prop_map(Ev::Ping),
            4 => (1i64..900).prop_map(Ev::Wait),
            1 => Just(Ev::Pause),
            1 => Just(Ev::Resume),
            1 => Just(Ev::Lose),
        ];
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases: 400,
            ..ProptestConfig::default()
        });
        runner
            .run(&proptest::collection::vec(ev, 1..60), |evs| {
                let mut now = 1_000_000i64;
                let mut h = Hb::default();
                let mut spool: Vec<(String, i64)> = Vec::new();
                let (mut raises, mut expiries) = (0, 0);
                // the pager: publish, remove, raise, resolve
                let settle = |h: &mut Hb, spool: &mut Vec<(String, i64)>, raises: &mut i32| {
                    if let (Some((f, at)), false) = (&h.timer, h.timer_published) {
                        spool.push((f.clone(), *at));
                        h.timer_published = true;
                    }
                    spool.retain(|(f, _)| !h.remove.contains(f));
                    h.remove.clear();
                    if h.raise_owed {
                        *raises += 1;
                        h.raise_owed = false;
                    }
                    h.resolve_owed = false;
                };
                for e in evs {
                    match e {
                        Ev::Ping(dt) | Ev::Wait(dt) => {
                            // time passes: Asterisk runs every timer due
                            let until = now + dt;
                            loop {
                                spool.sort_by_key(|(_, at)| *at);
                                match spool.first().cloned() {
                                    Some((f, at)) if at <= until => {
                                        now = now.max(at);
                                        spool.retain(|(g, _)| *g != f);
                                        let before = h.clone();
                                        let (n, v) = timer_run(&h, "p", now);
                                        h = n;
                                        if v == Verdict::Raised {
                                            expiries += 1;
                                            let d = before.deadline.unwrap();
                                            prop_assert!(now >= d, "paged before the deadline");
                                            prop_assert!(now - d <= 0, "paged late: {now} > {d}");
                                        }
                                        settle(&mut h, &mut spool, &mut raises);
                                    }
                                    _ => break,
                                }
                            }
                            now = until;
                            if let Ev::Ping(_) = e {
                                let present = h
                                    .timer
                                    .as_ref()
                                    .is_some_and(|(f, _)| spool.iter().any(|(g, _)| g == f));
                                h = ping(&h, "p", T, now, present);
                                settle(&mut h, &mut spool, &mut raises);
                            }
                        }
                        Ev::Pause => {
                            h = pause(&h);
                            settle(&mut h, &mut spool, &mut raises);
                        }
                        Ev::Resume => {
                            h = resume(&h, "p", T, now);
                            settle(&mut h, &mut spool, &mut raises);
                        }
                        Ev::Lose => {
                            // removed by hand; the next command puts it back
                            spool.clear();
                            if h.armed() {
                                h = repair(&h, "p", now);
                            }
                            settle(&mut h, &mut spool, &mut raises);
                        }
                    }
                    prop_assert_eq!(raises, expiries, "one page per expiry");
                    if h.armed() {
                        let (f, at) = h.timer.clone().unwrap();
                        prop_assert_eq!(spool.len(), 1, "one timer pending: {:?}", spool);
                        prop_assert_eq!(&spool[0].0, &f);
                        prop_assert!(at <= h.deadline.unwrap(), "due after the deadline");
                    } else {
                        prop_assert!(spool.is_empty(), "a timer left behind: {:?}", spool);
                    }
                }
                // silence from now on: an armed heartbeat always pages
                if h.armed() {
                    let (_, at) = h.timer.clone().unwrap();
                    let mut t = at;
                    for _ in 0..3 {
                        let (n, v) = timer_run(&h, "p", t);
                        h = n;
                        if v == Verdict::Raised {
                            break;
                        }
                        t = h.timer.clone().unwrap().1;
                    }
                    prop_assert_eq!(h.state, HbState::Expired);
                }
                Ok(())
            })
            .unwrap();
    }
}
