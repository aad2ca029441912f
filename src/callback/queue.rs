//! The callback's critical section: screen the caller, look the number up,
//! then, holding the spool's callback lock, count what is pending, decide
//! and publish as one step, so `max_pending` and the cool-down hold for
//! callers arriving together. The `callback` program only wires its AGI
//! session to this.

use std::time::{Duration, SystemTime};

use log::info;

use super::state::State as CallbackState;
use super::{candidate, decide, file_name, permit, screen, Config, Decision, Facts, FILE_PREFIX};
use crate::agi::Env;
use crate::callfile::spool::STALE_STAGING;
use crate::callfile::{PublishError, Spool};

/// How long a callback waits for the others on the spool to decide.
pub const LOCK_WAIT: Duration = Duration::from_secs(5);

/// Decides for the caller of `env` and queues the callback when the
/// decision says so. `now` is the clock (read once before the lock for a
/// refusal, once under it); `cut_check` runs just before the file is
/// published: an `Err` there (a cut environment block) is an `ERROR`,
/// nothing queued.
pub fn decide_and_queue(
    env: &Env,
    cfg: &Config,
    now: impl Fn() -> SystemTime,
    cut_check: impl FnOnce() -> Result<(), String>,
) -> Decision {
    let raw = candidate(env.arg(1), env.callerid());
    let number = match screen(raw, cfg) {
        Ok(n) => n,
        Err(d) => return d,
    };
    let spool = Spool::new(&cfg.spool_dir);
    let state = CallbackState::for_spool(&cfg.spool_dir);
    spool.clean_stale_staging(STALE_STAGING);
    let name = file_name(&number);
    let permitted = match permit::lookup(cfg, state.dir(), &number) {
        Ok(l) => {
            if let Some(note) = l.note {
                info!("{number} {note}");
            }
            l.permitted
        }
        Err(e) => return Decision::error(Some(&number), e.to_string()),
    };
    if !permitted {
        return decide(&number, &Facts::default(), cfg, now());
    }
    let _lock = match state.lock(LOCK_WAIT) {
        Ok(l) => l,
        Err(e) => return Decision::error(Some(&number), e.to_string()),
    };
    let now = now();
    let mut facts = Facts {
        permitted,
        pending_same: spool.is_pending(&name),
        ..Facts::default()
    };
    facts.pending_count = match spool.count_pending(FILE_PREFIX) {
        Ok(n) => n,
        Err(e) => return Decision::error(Some(&number), e.to_string()),
    };
    if cfg.cooldown_seconds > 0 {
        facts.last_queued = match state.last_queued(&number, now) {
            Ok(t) => t,
            Err(e) => return Decision::error(Some(&number), e.to_string()),
        };
    }
    let mut decision = decide(&number, &facts, cfg, now);
    if let Some(q) = &decision.queue {
        if let Err(e) = cut_check() {
            return Decision::error(Some(&number), e);
        }
        match spool.publish_call(&q.name, &q.call, q.at) {
            Ok(_) => {
                if cfg.cooldown_seconds > 0 {
                    if let Err(e) = state.record_queued(&number, now) {
                        // The callback is queued; the cool-down is best effort.
                        info!("{number} cannot record cool-down: {e}");
                    }
                }
            }
            Err(PublishError::AlreadyPending(_)) => {
                decision = Decision::duplicate(&number, &q.name);
            }
            Err(e) => decision = Decision::error(Some(&number), e.to_string()),
        }
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callback::Outcome;

    const ENV: &[u8] = include_bytes!("../../fixtures/asterisk-22.10/env-utf8-name.txt");

    fn setup(extra: &str) -> (tempfile::TempDir, Config) {
        let d = tempfile::tempdir().unwrap();
        for s in ["spool/outgoing", "spool/tmp"] {
            std::fs::create_dir_all(d.path().join(s)).unwrap();
        }
        let json = format!(
            r#"{{"permit": ["89105647899"],
                "rewrite": [{{"prefix": "+7", "replace": "8"}}],
                "call": {{"channel": "PJSIP/{{number}}@sip-provider", "context": "callback-menu"}},
                "spool_dir": "{}/spool"{extra}}}"#,
            d.path().display()
        );
        (d, Config::from_json(json.as_bytes()).unwrap())
    }

    fn env() -> Env {
        Env::parse(ENV).unwrap()
    }

    #[test]
    fn a_permitted_caller_is_queued_once_then_duplicate() {
        let (d, cfg) = setup("");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let first = decide_and_queue(&env(), &cfg, || t, || Ok(()));
        assert_eq!(first.outcome, Outcome::Queued, "{first:?}");
        let files = std::fs::read_dir(d.path().join("spool/outgoing"))
            .unwrap()
            .count();
        assert_eq!(files, 1);
        let again = decide_and_queue(&env(), &cfg, || t, || Ok(()));
        assert_eq!(again.outcome, Outcome::Duplicate, "{again:?}");
    }

    #[test]
    fn a_cut_environment_queues_nothing() {
        let (d, cfg) = setup("");
        let r = decide_and_queue(&env(), &cfg, SystemTime::now, || Err("cut".into()));
        assert_eq!(r.outcome, Outcome::Error);
        assert_eq!(
            std::fs::read_dir(d.path().join("spool/outgoing"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn the_cool_down_is_read_at_the_injected_instant() {
        let (d, cfg) = setup(r#", "cooldown_seconds": 600"#);
        let t = SystemTime::now();
        assert_eq!(
            decide_and_queue(&env(), &cfg, || t, || Ok(())).outcome,
            Outcome::Queued
        );
        // the call was placed (Asterisk took the file); 5 minutes later:
        // still cooling down; 11 minutes later: queued again
        for f in std::fs::read_dir(d.path().join("spool/outgoing")).unwrap() {
            std::fs::remove_file(f.unwrap().path()).unwrap();
        }
        let soon = t + Duration::from_secs(300);
        assert_eq!(
            decide_and_queue(&env(), &cfg, || soon, || Ok(())).outcome,
            Outcome::Throttled
        );
        let later = t + Duration::from_secs(660);
        assert_eq!(
            decide_and_queue(&env(), &cfg, || later, || Ok(())).outcome,
            Outcome::Queued
        );
    }

    #[test]
    fn a_caller_not_permitted_is_denied_without_the_lock() {
        let (d, mut cfg) = setup("");
        cfg.permit.clear();
        let r = decide_and_queue(&env(), &cfg, SystemTime::now, || Ok(()));
        assert_eq!(r.outcome, Outcome::Denied);
        assert!(!d.path().join("spool/callback-state/lock").exists());
    }
}
