//! The pager's heartbeat door: pings, timer runs, pause and resume. The
//! decisions are [`crate::heartbeat`]'s pure transitions; here each one is
//! made in one transaction under the heartbeat's lock (the lock of its
//! alert id, `hb-NAME`), and what it owes (the timer file to publish, old
//! timers to remove, the alert to raise or resolve) is carried out under
//! that same lock and cleared from the database once done. Whatever fails
//! stays owed: the next ping, any command's start and the receiver's loop
//! finish it, so a ping racing a timer run never loses the timer and an
//! expiry is raised exactly once.

use super::{at_time, unix_now, Pager, PagerError, RaiseRequest, ID_LOCK_WAIT};
use crate::alert::config::{AlertsConfig, HeartbeatCfg};
use crate::callfile::{Action, CallFile, PublishError, SpoolError};
use crate::heartbeat::{self as hb, Hb, HbState, Verdict};
use crate::timefmt::ser_opt_time;

/// The dialplan context a heartbeat's timer runs in
/// (`agi-bin/extensions_alert.conf`).
pub const HEARTBEAT_CONTEXT: &str = "autodial-heartbeat";

/// A heartbeat as `list`, `--json` and HTTP show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HeartbeatView {
    pub name: String,
    pub state: HbState,
    pub timeout_seconds: i64,
    #[serde(serialize_with = "ser_opt_time")]
    pub last_ping: Option<i64>,
    /// Seconds since the last ping (at the time asked).
    pub seconds_since_ping: Option<i64>,
    #[serde(serialize_with = "ser_opt_time")]
    pub deadline: Option<i64>,
    /// The timer's file in `outgoing/`.
    pub timer_file: Option<String>,
    /// `pending`, `missing` (armed but its file is not there: put back by
    /// the next ping or command), `owed` (not yet published), `none`.
    pub timer: &'static str,
}

/// What a ping did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Ping {
    /// `ok`, or `recovered` (it was expired: its alert resolved).
    pub status: &'static str,
    pub heartbeat: HeartbeatView,
}

/// The timer call file of heartbeat `name`: a Local channel whose far side
/// answers and waits; the near side runs `AGI(alert,heartbeat,NAME)`.
pub fn timer_call_file(name: &str) -> CallFile {
    let mut cf = CallFile::new(
        format!("Local/s@{HEARTBEAT_CONTEXT}"),
        Action::Extension {
            context: HEARTBEAT_CONTEXT.into(),
            extension: format!("hb-{name}"),
            priority: Some(1),
        },
    );
    cf.max_retries = Some(0);
    cf.wait_time = Some(30);
    cf.variables = vec![("HEARTBEAT".into(), name.into())];
    cf
}

impl Pager {
    fn heartbeat_cfg(cfg: &AlertsConfig, name: &str) -> Result<HeartbeatCfg, PagerError> {
        cfg.heartbeats
            .get(name)
            .cloned()
            .ok_or_else(|| PagerError::NotFound {
                what: format!(
                    "no heartbeat {:?} in the config",
                    crate::escape_bytes(&name.as_bytes()[..name.len().min(64)])
                ),
            })
    }

    fn timer_present(&self, h: &Hb) -> bool {
        h.timer
            .as_ref()
            .is_some_and(|(f, _)| self.spool.outgoing().join(f).exists())
    }

    /// One transition of heartbeat `name` under its lock, then what it
    /// owes carried out.
    fn heartbeat_change<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Hb, bool) -> (Hb, T),
    ) -> Result<(Hb, T), PagerError> {
        let _lock = self.lock_id(&hb::alert_id(name), Some(ID_LOCK_WAIT))?;
        let present = self
            .read(|s| s.heartbeats())?
            .into_iter()
            .find(|(n, _)| n == name)
            .is_some_and(|(_, h)| self.timer_present(&h));
        let (h, out) = self.write(|s| s.heartbeat_update(name, |cur| f(cur, present)))?;
        let h = self.heartbeat_settle_locked(name, h)?;
        Ok((h, out))
    }

    /// Carries out what heartbeat `name` owes (its lock held): the
    /// timer's publish, old timers' removal, the alert's raise or resolve.
    /// Each done part is cleared in the database; the first failure is
    /// returned (the rest stays owed).
    fn heartbeat_settle_locked(&self, name: &str, h: Hb) -> Result<Hb, PagerError> {
        let cfg = self.config();
        let mut first: Option<PagerError> = None;
        let mut done = h.clone();
        if let (Some((file, at)), false) = (&h.timer, h.timer_published) {
            match self
                .spool
                .publish_call(file, &timer_call_file(name), at_time(*at))
            {
                Ok(_) | Err(PublishError::AlreadyPending(_)) => done.timer_published = true,
                Err(e) => {
                    first.get_or_insert(super::spool_err(
                        &hb::alert_id(name),
                        format!("cannot publish the heartbeat timer {file}"),
                        e,
                    ));
                }
            }
        }
        done.remove.retain(|file| match self.spool.cancel(file) {
            Ok(_) | Err(SpoolError::NotFound(_)) => false,
            Err(e) => {
                first.get_or_insert(super::spool_err(
                    &hb::alert_id(name),
                    format!("cannot remove the heartbeat timer {file}"),
                    e,
                ));
                true
            }
        });
        if h.raise_owed {
            match cfg.heartbeats.get(name) {
                Some(c) => {
                    let r = RaiseRequest {
                        id: hb::alert_id(name),
                        text: c.text.clone(),
                        chain: c.chain.clone(),
                        labels: c.labels.clone(),
                        labels_cut: 0,
                    };
                    match self.raise_with(&r, None, true) {
                        Ok(_) => {
                            done.raise_owed = false;
                            log::warn!(
                                "heartbeat {name} expired: no ping since {}; alert {} raised",
                                h.last_ping
                                    .and_then(crate::timefmt::rfc3339)
                                    .unwrap_or_else(|| "-".into()),
                                r.id
                            );
                        }
                        Err(e) => {
                            first.get_or_insert(e);
                        }
                    }
                }
                None => done.raise_owed = false,
            }
        }
        if h.resolve_owed {
            match self.resolve_locked(&hb::alert_id(name)) {
                Ok(_) => {
                    done.resolve_owed = false;
                    log::info!("heartbeat {name} recovered: alert hb-{name} resolved");
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if done != h {
            let keep = done.clone();
            // only the owed flags change here (the lock keeps every other
            // change of this heartbeat out)
            self.write(|s| {
                s.heartbeat_update(name, |cur| {
                    let mut n = cur.clone();
                    if n.timer == keep.timer {
                        n.timer_published = keep.timer_published;
                    }
                    n.remove.retain(|f| keep.remove.contains(f));
                    n.raise_owed &= keep.raise_owed;
                    n.resolve_owed &= keep.resolve_owed;
                    (n, ())
                })
            })?;
        }
        match first {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// A ping of heartbeat `name` at `now`: a database write (no file),
    /// unless the timer must be armed or put back, or the heartbeat
    /// recovers (its alert resolved).
    pub fn ping(&self, name: &str, now: i64) -> Result<Ping, PagerError> {
        let cfg = self.config();
        let c = Self::heartbeat_cfg(&cfg, name)?;
        let (h, was) = self.heartbeat_change(name, |cur, present| {
            (
                hb::ping(cur, name, c.timeout_seconds, now, present),
                cur.state,
            )
        })?;
        Ok(Ping {
            status: if was == HbState::Expired {
                "recovered"
            } else {
                "ok"
            },
            heartbeat: self.view(name, &c, Some(&h), now),
        })
    }

    /// The timer of heartbeat `name` ran (the `alert` AGI, from
    /// `[autodial-heartbeat]`) at `now`.
    pub fn heartbeat_timer(&self, name: &str, now: i64) -> Result<Verdict, PagerError> {
        let cfg = self.config();
        if !cfg.heartbeats.contains_key(name) {
            return Ok(Verdict::Idle);
        }
        let (_, v) = self.heartbeat_change(name, |cur, _| hb::timer_run(cur, name, now))?;
        Ok(v)
    }

    /// Pause heartbeat `name` (maintenance).
    pub fn pause(&self, name: &str, now: i64) -> Result<HeartbeatView, PagerError> {
        let cfg = self.config();
        let c = Self::heartbeat_cfg(&cfg, name)?;
        let (h, _) = self.heartbeat_change(name, |cur, _| (hb::pause(cur), ()))?;
        Ok(self.view(name, &c, Some(&h), now))
    }

    /// Resume heartbeat `name`: armed from `now`.
    pub fn resume(&self, name: &str, now: i64) -> Result<HeartbeatView, PagerError> {
        let cfg = self.config();
        let c = Self::heartbeat_cfg(&cfg, name)?;
        let (h, _) = self.heartbeat_change(name, |cur, _| {
            (hb::resume(cur, name, c.timeout_seconds, now), ())
        })?;
        Ok(self.view(name, &c, Some(&h), now))
    }

    fn view(&self, name: &str, c: &HeartbeatCfg, h: Option<&Hb>, now: i64) -> HeartbeatView {
        let d = Hb::default();
        let h = h.unwrap_or(&d);
        let timer = match (&h.timer, h.timer_published) {
            (None, _) => "none",
            (Some(_), false) => "owed",
            (Some(_), true) if self.timer_present(h) => "pending",
            (Some(_), true) => "missing",
        };
        HeartbeatView {
            name: name.to_string(),
            state: h.state,
            timeout_seconds: c.timeout_seconds,
            last_ping: h.last_ping,
            seconds_since_ping: h.last_ping.map(|t| (now - t).max(0)),
            deadline: h.deadline,
            timer_file: h.timer.as_ref().map(|(f, _)| f.clone()),
            timer,
        }
    }

    /// Every configured heartbeat, by name.
    pub fn heartbeats(&self, now: i64) -> Result<Vec<HeartbeatView>, PagerError> {
        let cfg = self.config();
        let rows = self.read(|s| s.heartbeats())?;
        Ok(cfg
            .heartbeats
            .iter()
            .map(|(n, c)| {
                let h = rows.iter().find(|(r, _)| r == n).map(|(_, h)| h);
                self.view(n, c, h, now)
            })
            .collect())
    }

    /// One heartbeat.
    pub fn heartbeat(&self, name: &str, now: i64) -> Result<HeartbeatView, PagerError> {
        let cfg = self.config();
        let c = Self::heartbeat_cfg(&cfg, name)?;
        let rows = self.read(|s| s.heartbeats())?;
        let h = rows.iter().find(|(r, _)| r == name).map(|(_, h)| h);
        Ok(self.view(name, &c, h, now))
    }

    /// Finishes what heartbeats owe, puts back the timer of an armed one
    /// whose file is missing, and disarms those gone from the config.
    /// Heartbeats another process holds are left to it.
    pub fn settle_heartbeats(&self, now: i64) -> Vec<PagerError> {
        let mut failed = Vec::new();
        let rows = match self.read(|s| s.heartbeats()) {
            Ok(r) => r,
            Err(e) => return vec![e],
        };
        let cfg = self.config();
        for (name, h) in rows {
            let gone = !cfg.heartbeats.contains_key(&name);
            let missing = h.armed() && h.timer_published && !self.timer_present(&h);
            let lost = h.armed() && h.timer.is_none();
            let owes = !h.timer_published && h.timer.is_some()
                || !h.remove.is_empty()
                || h.raise_owed
                || h.resolve_owed;
            if !(gone || missing || lost || owes) {
                continue;
            }
            let lock = match self.lock_id(&hb::alert_id(&name), None) {
                Ok(Some(l)) => l,
                Ok(None) => continue,
                Err(e) => {
                    failed.push(e);
                    continue;
                }
            };
            let r = (|| {
                let (h, _) = self.write(|s| {
                    s.heartbeat_update(&name, |cur| {
                        let n = if gone {
                            hb::removed(cur)
                        } else if cur.armed()
                            && (cur.timer.is_none()
                                || cur.timer_published && !self.timer_present(cur))
                        {
                            log::warn!("heartbeat {name}: its timer file was missing; put back");
                            hb::repair(cur, &name, now)
                        } else {
                            cur.clone()
                        };
                        (n, ())
                    })
                })?;
                let h = self.heartbeat_settle_locked(&name, h)?;
                if gone && h.remove.is_empty() {
                    self.write(|s| s.heartbeat_delete(&name))?;
                }
                Ok::<(), PagerError>(())
            })();
            drop(lock);
            if let Err(e) = r {
                failed.push(e);
            }
        }
        failed
    }
}

/// The timer run when the database cannot be used: nothing is raised, and
/// the timer is not lost either: a new one for heartbeat `name`, due in
/// `delay` seconds, is published into `spool_dir` without the database
/// (its run reads the database again). Returns its file name.
pub fn publish_retry_timer(
    spool_dir: &std::path::Path,
    name: &str,
    delay: i64,
) -> Result<String, PagerError> {
    let now = unix_now();
    let file = format!("heartbeat-{name}-retry{now}.call");
    crate::callfile::Spool::new(spool_dir)
        .publish_call(&file, &timer_call_file(name), at_time(now + delay))
        .map_err(|e| super::spool_err(&hb::alert_id(name), format!("cannot publish {file}"), e))?;
    Ok(file)
}
