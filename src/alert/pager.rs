//! The pager: the one door to alert state. Every entry point (the command
//! line, the `alert` AGI program, the web receiver) starts a [`Pager`] and
//! calls its methods; nobody else opens the store or touches the spool for
//! alert work.
//!
//! The promise it keeps: a change is answered as done only once the spool
//! agrees with the database. The database is the ledger: each call row
//! says whether its file is published and whether its removal is owed
//! after a cancel. Every raise, ack and resolve of an id first settles what
//! the spool owes that id ([`Pager::sync`]), so a publish or a removal that
//! failed (a missing staging directory, ENOSPC, EMFILE, a killed process)
//! is finished by the next attempt, by [`Pager::finish_all`] (run at start
//! and by the receiver every few seconds), and reported by
//! [`Pager::health`] while it is late.
//!
//! Publishing and removing the files of one id happen under an exclusive
//! `flock` of that id (64 lock files, by hash), so a resolve committed
//! while a raise is still publishing waits for that publish and then
//! removes every file it owes; a process killed mid-publish drops its lock,
//! so a raise in progress (locked) is never mistaken for a dead one
//! (unlocked). Speech is rendered before any of this, outside every lock
//! other requests need, a few at a time.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::config::AlertsConfig;
use super::store::{
    AlertView, CallInfo, CallRow, Change, Counts, NewAlert, PhoneAck, PlannedCall, Raised,
    Recorded, Store, StoreError,
};
use super::{fit_labels, plan, valid_id, AlertState, Outcome, MAX_LABEL, MAX_LABELS, MAX_TEXT};
use crate::callfile::{PublishError, Spool, SpoolError};
use crate::error::Invalid;
use crate::speech::{self, Phrase};

mod heartbeat;
mod line;
mod oncall;
pub use heartbeat::{publish_retry_timer, timer_call_file, HeartbeatView, Ping, HEARTBEAT_CONTEXT};
pub use line::{LineAlerts, Prepared};
pub use oncall::{
    on_call, LineRoute, OverrideChange, Reach, ReplanReport, MAX_OVERRIDE, REPLAN_MARGIN,
};

pub use crate::callfile::spool::STALE_STAGING;
/// Health is bad while the spool has owed an alert something this long.
pub const OWED_LATE_SECS: i64 = 30;
/// How long a sync waits for another process publishing the same id.
const ID_LOCK_WAIT: Duration = Duration::from_secs(10);
/// Lock files for ids (by hash).
const ID_LOCKS: u64 = 64;
/// Database connections in use at once in one process.
const DB_CONNS: usize = 2;
/// Changes under way at once in one process.
const CHANGES: usize = 4;
/// Renders at once in one process (each runs an engine process).
const RENDERS: usize = 2;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PagerError {
    /// Bad input (id, text, labels, an unknown chain): nothing written.
    #[error(transparent)]
    Invalid(Invalid),
    /// No chain given and no route matches: nothing written.
    #[error("{0}")]
    NoRoute(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A call file could not be published or removed: what is stored is
    /// kept, and the spool owes it until a later attempt succeeds.
    #[error("alert {id}: {what}")]
    Spool {
        id: String,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No such thing in the config (a heartbeat's name): nothing written.
    #[error("{what}")]
    NotFound { what: String },
    /// Another process held the id's lock too long.
    #[error("alert {id}: {what}")]
    Busy { id: String, what: String },
    /// Acting as the spool's owner failed, or the owners disagree.
    #[error("{0}")]
    Owner(String),
    /// The config cannot be used.
    #[error(transparent)]
    Config(#[from] crate::error::ConfigError),
}

impl PagerError {
    /// True for an error of the input (nothing was written; a retry with
    /// the same input fails the same way).
    pub fn is_input(&self) -> bool {
        matches!(self, PagerError::Invalid(_) | PagerError::NoRoute(_))
    }
}

/// A raise as asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaiseRequest {
    pub id: String,
    pub text: String,
    pub chain: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Labels already dropped or shortened by the sender's translation.
    pub labels_cut: u32,
}

impl RaiseRequest {
    /// A request from a monitoring system: labels fitted to the bounds
    /// and the text cut to [`MAX_TEXT`], never refused for their size.
    pub fn fitted(
        id: String,
        text: &str,
        chain: Option<String>,
        labels: &BTreeMap<String, String>,
    ) -> RaiseRequest {
        let (labels, labels_cut) = fit_labels(labels);
        RaiseRequest {
            id,
            text: super::cut(text, MAX_TEXT).to_string(),
            chain,
            labels,
            labels_cut,
        }
    }
}

/// What a raise did. Its word ([`RaiseOutcome::word`]) is the `status` of
/// `--json` and of the HTTP answer alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// A new episode: its calls are in the spool.
    Raised {
        episode: u32,
        calls: Vec<CallRow>,
        speech_error: Option<String>,
    },
    /// Firing or acked already: only the text changed (`changed` false:
    /// not even that, a duplicate).
    Updated {
        episode: u32,
        state: AlertState,
        changed: bool,
    },
}

impl RaiseOutcome {
    /// `raised`, `updated` or `duplicate`.
    pub fn word(&self) -> &'static str {
        match self {
            RaiseOutcome::Raised { .. } => "raised",
            RaiseOutcome::Updated { changed: true, .. } => "updated",
            RaiseOutcome::Updated { changed: false, .. } => "duplicate",
        }
    }
}

/// What a raise, ack or resolve did, as `--json` and the HTTP API both
/// print it. `status` is one word of: `raised`, `updated` (firing or acked
/// already; only the text changed), `duplicate` (nothing changed),
/// `acked`, `resolved`, `unknown` (no such id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub status: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub episode: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<AlertState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<usize>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::ser_opt_time"
    )]
    pub first_call: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_cancelled: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acked_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speech_error: Option<String>,
}

impl Report {
    fn new(status: &'static str, id: &str) -> Report {
        Report {
            status,
            id: id.to_string(),
            episode: None,
            state: None,
            calls: None,
            first_call: None,
            calls_cancelled: None,
            acked_by: None,
            speech_error: None,
        }
    }

    /// The report of a raise of `id`.
    pub fn of_raise(id: &str, r: &RaiseOutcome) -> Report {
        let mut out = Report::new(r.word(), id);
        match r {
            RaiseOutcome::Raised {
                episode,
                calls,
                speech_error,
            } => {
                // rows with nobody on call are no calls
                let real = || calls.iter().filter(|c| c.outcome == Outcome::Scheduled);
                out.episode = Some(*episode);
                out.calls = Some(real().count());
                out.first_call = real().map(|c| c.at).min();
                out.speech_error = speech_error.clone();
            }
            RaiseOutcome::Updated { episode, state, .. } => {
                out.episode = Some(*episode);
                out.state = Some(*state);
            }
        }
        out
    }

    /// The report of an ack (`done` = `acked`) or a resolve (`resolved`)
    /// of `id` (escaped when unknown: it may be anything).
    pub fn of_change(done: &'static str, id: &str, c: &Option<Change>) -> Report {
        match c {
            None => Report::new("unknown", &crate::escape_bytes(id.as_bytes())),
            Some(Change::Done { cancelled }) => {
                let mut r = Report::new(done, id);
                r.calls_cancelled = Some(*cancelled);
                r
            }
            Some(Change::Already { state, by }) => {
                let mut r = Report::new("duplicate", id);
                r.state = Some(*state);
                r.acked_by = by.clone();
                r
            }
        }
    }
}

/// What [`Pager::finish_all`] did.
#[derive(Debug, Default)]
pub struct Finished {
    /// Alerts whose owed files were all published or removed.
    pub done: usize,
    /// Alerts another process is working on now (locked): left to it.
    pub busy: usize,
    /// Alerts still owed something, with why.
    pub failed: Vec<PagerError>,
}

/// A counting gate: at most `n` holders at once, waited for until a
/// deadline.
struct Gate {
    free: Mutex<usize>,
    cv: Condvar,
}

struct GatePass<'a>(&'a Gate);

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.cv.notify_one();
    }
}

impl Gate {
    fn new(n: usize) -> Gate {
        Gate {
            free: Mutex::new(n),
            cv: Condvar::new(),
        }
    }

    fn enter(&self, deadline: Option<Instant>) -> Option<GatePass<'_>> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            match deadline {
                None => free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    free = self
                        .cv
                        .wait_timeout(free, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        *free -= 1;
        Some(GatePass(self))
    }
}

/// An id's lock, held: the bucket's gate in this process and its `flock`.
struct IdLock<'a> {
    _file: File,
    _pass: GatePass<'a>,
}

/// Config, store connections and spool: one per process, shared by its
/// threads (every method takes `&self`).
pub struct Pager {
    /// The config in force (replaced whole by [`Pager::reload`]).
    cfg: RwLock<Arc<AlertsConfig>>,
    /// Where the database and the lock files are (fixed for the life of
    /// the process).
    state_dir: PathBuf,
    spool: Spool,
    /// Open connections to reuse (one is opened when none is free).
    stores: Mutex<Vec<Store>>,
    /// Writes of this process one at a time (other processes wait in
    /// SQLite's busy handler).
    writer: Mutex<()>,
    renders: Gate,
    /// Connections in use at once.
    db: Gate,
    /// Changes (commit and settle) under way at once: more only switch
    /// threads, never finish sooner.
    changes: Gate,
    /// One gate per id-lock bucket, so threads of this process hand the
    /// lock over without polling the `flock`.
    id_gates: Vec<Gate>,
    stop: Arc<AtomicBool>,
}

/// Checks a raise's input; the error names the field.
pub fn check_request(r: &RaiseRequest) -> Result<(), PagerError> {
    let bad = |field, message: String| Err(PagerError::Invalid(Invalid::new(field, message)));
    if !valid_id(&r.id) {
        return bad(
            "id",
            format!(
                "{:?}: use 1-64 ASCII letters, digits, '-', '_', '.'",
                crate::escape_bytes(r.id.as_bytes())
            ),
        );
    }
    if r.text.trim().is_empty() {
        return bad("text", "empty".into());
    }
    if r.text.len() > MAX_TEXT {
        return bad(
            "text",
            format!("{} bytes, at most {MAX_TEXT}", r.text.len()),
        );
    }
    if r.labels.len() > MAX_LABELS {
        return bad(
            "labels",
            format!("{} of them, at most {MAX_LABELS}", r.labels.len()),
        );
    }
    for (k, v) in &r.labels {
        if k.is_empty() || k.len() > MAX_LABEL || v.len() > MAX_LABEL {
            return bad(
                "labels",
                format!(
                    "{:?}: a key of 1-{MAX_LABEL} bytes and a value of at most {MAX_LABEL}",
                    crate::escape_bytes(&k.as_bytes()[..k.len().min(40)])
                ),
            );
        }
    }
    Ok(())
}

/// Checks a raise against the config before anything is opened: its
/// input ([`check_request`]) and its chain (given, else routed). Returns
/// the chain's name.
pub fn check_raise(cfg: &AlertsConfig, r: &RaiseRequest) -> Result<String, PagerError> {
    check_request(r)?;
    cfg.choose_chain(r.chain.as_deref(), &r.labels)
        .map_err(|e| {
            if r.chain.is_some() {
                PagerError::Invalid(Invalid::new("chain", e))
            } else {
                PagerError::NoRoute(e)
            }
        })
}

/// How late the earliest of `ats` (the planned times of calls about to be
/// published) is at `now`, when it is [`OWED_LATE_SECS`] or more; else 0.
/// A publish that comes that late (the spool was unusable) moves its calls
/// by it, so the chain still escalates step by step from now instead of
/// ringing everyone at once.
pub fn late_by(ats: &[i64], now: i64) -> i64 {
    match ats.iter().min() {
        Some(first) if now - first >= OWED_LATE_SECS => now - first,
        _ => 0,
    }
}

/// Unix seconds as a `SystemTime`.
pub fn at_time(secs: i64) -> std::time::SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The health verdict on what the spool owes: late when an alert has been
/// owed a publish or a removal for [`OWED_LATE_SECS`] or more at `now`.
/// `owing` is (alert id, owed since), oldest first.
pub fn owed_problem(owing: &[(String, i64)], now: i64) -> Option<String> {
    let (id, since) = owing.first()?;
    let age = now - since;
    (age >= OWED_LATE_SECS).then(|| {
        format!(
            "{} alert(s) owe the spool a publish or a removal; the oldest, {id}, for {age} s",
            owing
                .iter()
                .filter(|(_, s)| now - s >= OWED_LATE_SECS)
                .count()
        )
    })
}

fn spool_err(
    id: &str,
    what: String,
    e: impl std::error::Error + Send + Sync + 'static,
) -> PagerError {
    PagerError::Spool {
        id: id.to_string(),
        what,
        source: Box::new(e),
    }
}

impl Pager {
    /// The door every entry point uses: as root, becomes the one owner of
    /// `outgoing/` and the state directory (never creating a database, WAL
    /// or sound as root); opens the store; removes staging files a killed
    /// process left; finishes what earlier attempts left undone (ids
    /// another process is working on are left to it).
    pub fn start(cfg: AlertsConfig) -> Result<(Pager, Finished), PagerError> {
        act_as_owner(&cfg)?;
        let pager = Pager::open(cfg)?;
        pager.spool.clean_stale_staging(STALE_STAGING);
        let finished = pager.finish_all();
        Ok((pager, finished))
    }

    /// [`Pager::start`] that only looks: as the owner, opened, nothing
    /// finished or repaired (`autodial heartbeat list` shows what is
    /// missing as it is).
    pub fn start_to_look(cfg: AlertsConfig) -> Result<Pager, PagerError> {
        act_as_owner(&cfg)?;
        Pager::open(cfg)
    }

    /// Opens the store under `cfg.state_dir` and the spool, as the user
    /// this process is (the AGI program, tests).
    pub fn open(cfg: AlertsConfig) -> Result<Pager, PagerError> {
        let store = Store::open(&cfg.state_dir)?;
        // the ids' lock files live here (made once, not at every lock)
        let locks = cfg.state_dir.join("locks");
        std::fs::create_dir_all(&locks).map_err(|e| StoreError {
            path: locks.clone(),
            what: format!("cannot create the lock directory: {e}"),
            source: None,
        })?;
        let spool = Spool::new(&cfg.spool_dir);
        Ok(Pager {
            state_dir: cfg.state_dir.clone(),
            cfg: RwLock::new(Arc::new(cfg)),
            spool,
            stores: Mutex::new(vec![store]),
            writer: Mutex::new(()),
            renders: Gate::new(RENDERS),
            db: Gate::new(DB_CONNS),
            changes: Gate::new(CHANGES),
            id_gates: (0..ID_LOCKS).map(|_| Gate::new(1)).collect(),
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The config in force.
    pub fn config(&self) -> Arc<AlertsConfig> {
        self.cfg.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `cfg` in force (`autodial serve` on SIGHUP). The directories
    /// (state, sounds, spool) cannot change while running: such a config
    /// is refused and the old one stays.
    pub fn reload(&self, cfg: AlertsConfig) -> Result<(), String> {
        let old = self.config();
        for (key, a, b) in [
            ("state_dir", &old.state_dir, &cfg.state_dir),
            ("sounds_dir", &old.sounds_dir, &cfg.sounds_dir),
            ("spool_dir", &old.spool_dir, &cfg.spool_dir),
        ] {
            if a != b {
                return Err(format!(
                    "{key}: changed from {} to {}; restart the service for that",
                    a.display(),
                    b.display()
                ));
            }
        }
        *self.cfg.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
        Ok(())
    }

    /// From now on renders in flight are killed and new ones not started
    /// (their alerts play the fallback prompt): for a shutdown.
    pub fn stop_renders(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Runs `f` on a free connection (opening one when none is), at most
    /// [`DB_CONNS`] at once: more readers would keep SQLite from
    /// checkpointing its WAL, and every query would slow down.
    fn read<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, PagerError> {
        self.with_store(|s| f(s))
    }

    /// Runs a write on a free connection, one write of this process at a
    /// time (a short transaction: never held across speech or the spool).
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, PagerError> {
        self.with_store(|s| {
            let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            f(s)
        })
    }

    fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError>,
    ) -> Result<T, PagerError> {
        let _pass = self.db.enter(None);
        let taken = self.stores.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut store = match taken {
            Some(s) => s,
            None => Store::open(&self.state_dir)?,
        };
        let r = f(&mut store);
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        Ok(r?)
    }

    /// The id's lock: first among this process's threads (a gate per
    /// bucket: a hand-off, no polling), then among processes (the bucket's
    /// `flock`). Waited for up to `wait`; `None`: only tried (`Ok(None)`
    /// when held elsewhere).
    fn lock_id(&self, id: &str, wait: Option<Duration>) -> Result<Option<IdLock<'_>>, PagerError> {
        let busy = |what: String| PagerError::Busy {
            id: id.to_string(),
            what,
        };
        let bucket = (crate::fsio::fnv64(&[id]) % ID_LOCKS) as usize;
        let start = Instant::now();
        let deadline = start + wait.unwrap_or(Duration::ZERO);
        let Some(pass) = self.id_gates[bucket].enter(Some(deadline)) else {
            return match wait {
                None => Ok(None),
                Some(w) => Err(busy(format!("another request held it for {w:?}"))),
            };
        };
        let path = self
            .state_dir
            .join("locks")
            .join(format!("{bucket:02}.lock"));
        let left = deadline.saturating_duration_since(Instant::now());
        match crate::fsio::lock(&path, left) {
            Ok(file) => Ok(Some(IdLock {
                _file: file,
                _pass: pass,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut && wait.is_none() => Ok(None),
            Err(e) => Err(busy(format!("{}: {e}", path.display()))),
        }
    }

    /// Settles what the spool owes alert `id`: publishes its committed
    /// calls not yet in `outgoing/`, removes the files of its cancelled
    /// calls. Waits for another process doing the same. `Ok` only when
    /// nothing is owed any more.
    pub fn sync(&self, id: &str) -> Result<(), PagerError> {
        let _lock = self.lock_id(id, Some(ID_LOCK_WAIT))?;
        self.sync_locked(id)
    }

    fn sync_locked(&self, id: &str) -> Result<(), PagerError> {
        let owed = self.read(|s| s.owed(id))?;
        let cfg = self.config();
        let mut first: Option<PagerError> = None;
        let mut published = Vec::new();
        let ats: Vec<i64> = owed.publish.iter().map(|c| c.at).collect();
        let shift = late_by(&ats, unix_now());
        for c in &owed.publish {
            let cf = cfg.call_file(&c.number, id, c.episode, c.id);
            let at = c.at + shift;
            match self.spool.publish_call(&c.file, &cf, at_time(at)) {
                Ok(_) | Err(PublishError::AlreadyPending(_)) => published.push((c.id, at)),
                Err(e) => {
                    first.get_or_insert(spool_err(id, format!("cannot publish {}", c.file), e));
                }
            }
        }
        let mut removed = Vec::new();
        for (call, file) in &owed.remove {
            match self.spool.cancel(file) {
                Ok(_) | Err(SpoolError::NotFound(_)) => removed.push(*call),
                Err(e) => {
                    first.get_or_insert(spool_err(id, format!("cannot remove {file}"), e));
                }
            }
        }
        if !published.is_empty() || !removed.is_empty() {
            self.write(|s| s.mark_settled(&published, &removed))?;
        }
        first.map_or(Ok(()), Err)
    }

    /// Settles every alert the spool owes something, skipping ids another
    /// process holds (it is alive and working on them).
    pub fn finish_all(&self) -> Finished {
        let mut out = Finished::default();
        let owing = match self.read(|s| s.owing()) {
            Ok(o) => o,
            Err(e) => {
                out.failed.push(e);
                return out;
            }
        };
        for (id, _) in owing {
            match self.lock_id(&id, None) {
                Ok(None) => out.busy += 1,
                Ok(Some(_lock)) => match self.sync_locked(&id) {
                    Ok(()) => out.done += 1,
                    Err(e) => out.failed.push(e),
                },
                Err(e) => out.failed.push(e),
            }
        }
        out.failed.extend(self.settle_heartbeats(unix_now()));
        out
    }

    /// `Ok` when the database and the spool can be written and nothing has
    /// been owed to the spool for [`OWED_LATE_SECS`] at `now`; else why.
    pub fn health(&self, now: i64) -> Result<(), String> {
        self.write(|s| s.check_writable())
            .map_err(|e| crate::error_chain(&e))?;
        self.spool.check_writable()?;
        let owing = self
            .read(|s| s.owing())
            .map_err(|e| crate::error_chain(&e))?;
        owed_problem(&owing, now).map_or(Ok(()), Err)
    }

    /// Renders the message (and the AGI's phrases) for every language the
    /// chain's contacts speak, within `deadline`. A failure never stops
    /// the raise: the call then plays the fallback prompt; the first error
    /// is returned.
    fn render(
        &self,
        cfg: &AlertsConfig,
        chain: &str,
        text: &str,
        deadline: Option<Instant>,
    ) -> (BTreeMap<String, String>, Option<String>) {
        let steps = cfg.chains.get(chain).map_or(&[][..], |c| &c.steps[..]);
        // a schedule (or an override) may choose anyone: then every
        // language a contact speaks
        let mut langs: Vec<String> = if steps.iter().any(|s| !s.schedules.is_empty()) {
            cfg.contacts.keys().map(|c| cfg.language_of(c)).collect()
        } else {
            steps
                .iter()
                .flat_map(|s| s.contacts.iter())
                .map(|c| cfg.language_of(c))
                .collect()
        };
        langs.sort();
        langs.dedup();
        let sp = &cfg.speech;
        let mut sounds = BTreeMap::new();
        let mut error = None;
        for lang in langs {
            let voice = speech::voice(sp, &lang);
            let msg = speech::message(sp, &lang, text, cfg.ack_digit);
            match self.render_text(cfg, &voice, &msg, deadline) {
                Ok(p) => {
                    sounds.insert(lang.clone(), p.to_string_lossy().into_owned());
                }
                Err(e) => {
                    error.get_or_insert(format!("speech ({lang}): {}", crate::error_chain(&e)));
                    continue;
                }
            }
            for ph in [Phrase::Acked, Phrase::Stale] {
                let _ = self.render_text(cfg, &voice, speech::phrase(&lang, ph), deadline);
            }
        }
        (sounds, error)
    }

    /// `text` in `voice` from the cache, else rendered (one of the
    /// [`RENDERS`] slots, within `deadline`).
    fn render_text(
        &self,
        cfg: &AlertsConfig,
        voice: &str,
        text: &str,
        deadline: Option<Instant>,
    ) -> Result<PathBuf, speech::SpeechError> {
        let (sp, dir) = (&cfg.speech, &cfg.sounds_dir);
        let cached = speech::cache_path(sp, dir, voice, text);
        if sp.engine != "none" && cached.is_file() {
            return Ok(cached);
        }
        let limit = speech::Limit {
            deadline,
            stop: Some(&self.stop),
        };
        match self.renders.enter(deadline) {
            Some(_pass) => speech::render(sp, dir, voice, text, limit),
            None => Err(speech::SpeechError::NoSlot),
        }
    }

    /// Raises an alert: a new episode whose calls are all queued at once,
    /// or (firing or acked already) a new text only. Whatever the spool
    /// owed this id is settled first; `Ok` means every call is in
    /// `outgoing/`. Speech gets until `deadline` (then the fallback
    /// prompt); `None`: the engine's own timeout only.
    pub fn raise(
        &self,
        r: &RaiseRequest,
        deadline: Option<Instant>,
    ) -> Result<RaiseOutcome, PagerError> {
        self.raise_with(r, deadline, false)
    }

    /// [`Pager::raise`]; `held`: the caller holds the id's lock already
    /// (a heartbeat's expiry).
    fn raise_with(
        &self,
        r: &RaiseRequest,
        deadline: Option<Instant>,
        held: bool,
    ) -> Result<RaiseOutcome, PagerError> {
        let settle = |id: &str| {
            if held {
                self.sync_locked(id)
            } else {
                self.sync(id)
            }
        };
        let cfg = self.config();
        let chain_name = check_raise(&cfg, r)?;
        // A repeat of what is stored needs no speech: settle and answer.
        if let Some((episode, state, text)) = self.read(|s| s.peek(&r.id))? {
            if state.is_open() && text == r.text {
                settle(&r.id)?;
                return Ok(RaiseOutcome::Updated {
                    episode,
                    state,
                    changed: false,
                });
            }
        }
        let chain = &cfg.chains[&chain_name];
        let (sounds, speech_error) = self.render(&cfg, &chain_name, &r.text, deadline);
        // who a schedule step calls is decided for the instant it rings,
        // from the moment the raise is stored
        let t = unix_now();
        let scheduled = chain.steps.iter().any(|s| !s.schedules.is_empty());
        // (the mark first: an override added after it is seen below)
        let mark = if scheduled {
            Some(self.read(|s| s.overrides_mark())?)
        } else {
            None
        };
        let overrides = if scheduled {
            self.rules(&cfg, t)?
        } else {
            BTreeMap::new()
        };
        let planned: Vec<PlannedCall> = plan(chain, |sc, off| {
            on_call(&cfg, &overrides, sc, t.saturating_add(off as i64))
        })
        .into_iter()
        .map(|p| PlannedCall {
            number: cfg
                .contacts
                .get(&p.contact)
                .map(|c| c.number.clone())
                .unwrap_or_default(),
            plan: p,
        })
        .collect();
        for p in planned.iter().filter(|p| p.plan.is_nobody()) {
            log::warn!(
                "alert {}: nobody is on call for schedule {} at {} (round {} step {}); going on to the next step",
                r.id,
                p.plan.schedule.as_deref().unwrap_or("-"),
                super::rfc3339(t.saturating_add(p.plan.offset as i64)).unwrap_or_default(),
                p.plan.round,
                p.plan.step
            );
        }
        let new = NewAlert {
            id: &r.id,
            text: &r.text,
            labels: &r.labels,
            labels_cut: r.labels_cut,
            chain: &chain_name,
            sounds: &sounds,
            speech_error: speech_error.as_deref(),
        };
        let work = self.changes.enter(None);
        let raised = self.write(|s| s.raise(&new, &planned, t))?;
        settle(&r.id)?;
        // (the pass is given back first: a re-plan takes one of its own)
        drop(work);
        // An override or a reload that came while this raise was planning
        // re-planned the alerts stored then, not this one: do it now.
        // (not with the id's lock held: a re-plan locks other ids)
        if let Some(mark) = mark.filter(|_| !held) {
            let moved =
                self.read(|s| s.overrides_mark())? != mark || !Arc::ptr_eq(&cfg, &self.config());
            if moved {
                if let Err(e) = self.replan(unix_now()) {
                    log::warn!("alert {}: re-plan: {}", r.id, crate::error_chain(&e));
                }
            }
        }
        Ok(match raised {
            Raised::Updated {
                episode,
                state,
                changed,
            } => RaiseOutcome::Updated {
                episode,
                state,
                changed,
            },
            Raised::New { episode, calls } => RaiseOutcome::Raised {
                episode,
                calls,
                speech_error,
            },
        })
    }

    /// Acknowledges from outside a call; the calls still pending are
    /// removed before it answers. `None` for an unknown id.
    pub fn ack(&self, id: &str, by: &str, via: super::Via) -> Result<Option<Change>, PagerError> {
        self.ack_episode(id, None, by, via)
    }

    /// [`Pager::ack`] of the episode the caller heard (`None`: the
    /// current one); a later episode is left alone.
    pub fn ack_episode(
        &self,
        id: &str,
        episode: Option<u32>,
        by: &str,
        via: super::Via,
    ) -> Result<Option<Change>, PagerError> {
        let _work = self.changes.enter(None);
        let c = self.write(|s| s.ack(id, episode, by, via, unix_now()))?;
        if c.is_some() {
            self.sync(id)?;
        }
        Ok(c)
    }

    /// Resolves; the calls still pending are removed before it answers.
    /// `None` for an unknown id.
    pub fn resolve(&self, id: &str) -> Result<Option<Change>, PagerError> {
        let _work = self.changes.enter(None);
        let c = self.write(|s| s.resolve(id, unix_now()))?;
        if c.is_some() {
            self.sync(id)?;
        }
        Ok(c)
    }

    /// [`Pager::resolve`] with the id's lock held by the caller.
    fn resolve_locked(&self, id: &str) -> Result<Option<Change>, PagerError> {
        let c = self.write(|s| s.resolve(id, unix_now()))?;
        if c.is_some() {
            self.sync_locked(id)?;
        }
        Ok(c)
    }

    /// The ack digit pressed on call `call_id`.
    pub fn ack_by_call(&self, call_id: i64) -> Result<Option<PhoneAck>, PagerError> {
        let r = self.write(|s| s.ack_by_call(call_id, unix_now()))?;
        if let Some(PhoneAck::Won { alert_id, .. }) = &r {
            self.sync(alert_id)?;
        }
        Ok(r)
    }

    /// Records a call's outcome.
    pub fn record_outcome(&self, call_id: i64, outcome: Outcome) -> Result<Recorded, PagerError> {
        self.write(|s| s.record_outcome(call_id, outcome, unix_now()))
    }

    /// What the AGI needs for call `call_id`.
    pub fn call_info(&self, call_id: i64) -> Result<Option<CallInfo>, PagerError> {
        self.read(|s| s.call_info(call_id))
    }

    /// Alerts not resolved (with `all`, every one), newest first.
    pub fn list(&self, all: bool) -> Result<Vec<AlertView>, PagerError> {
        self.read(|s| s.list(all))
    }

    /// One alert with its calls.
    pub fn show(&self, id: &str) -> Result<Option<AlertView>, PagerError> {
        self.read(|s| s.show(id))
    }

    /// The status page's alerts: firing and acked ones, then the last
    /// `recent` that ended, each with its calls.
    pub fn dashboard(&self, recent: usize) -> Result<Vec<AlertView>, PagerError> {
        self.read(|s| s.dashboard(recent))
    }

    /// Every episode of alert `id` with its calls, the latest first
    /// (empty: no such alert).
    pub fn history(&self, id: &str) -> Result<Vec<AlertView>, PagerError> {
        self.read(|s| s.history(id))
    }

    /// Totals for metrics.
    pub fn counts(&self) -> Result<Counts, PagerError> {
        self.read(|s| s.counts())
    }

    /// The sound a call plays for its alert in `lang`: the rendered
    /// message when it is there, else the fallback prompt. Asterisk is
    /// given the path without `.wav`.
    pub fn message_sound(&self, info: &CallInfo, lang: &str) -> String {
        self.alert_sound(&info.sounds, lang)
    }

    /// [`Pager::message_sound`] from an alert's rendered `sounds`.
    pub fn alert_sound(&self, sounds: &BTreeMap<String, String>, lang: &str) -> String {
        sounds
            .get(lang)
            .map(Path::new)
            .filter(|p| p.is_file())
            .map(playable)
            .unwrap_or_else(|| self.config().fallback_prompt.clone())
    }

    /// One of the AGI's phrases in `lang` when rendered, else `stock`.
    pub fn phrase_sound(&self, lang: &str, which: Phrase, stock: &str) -> String {
        self.text_sound(lang, speech::phrase(lang, which))
            .unwrap_or_else(|| stock.to_string())
    }

    /// `text` in `lang` when it was rendered ahead (never renders).
    pub fn text_sound(&self, lang: &str, text: &str) -> Option<String> {
        rendered_sound(&self.config(), lang, text)
    }
}

/// `text` in `lang` under `cfg`'s sounds when it was rendered ahead
/// (never renders; needs no database).
pub fn rendered_sound(cfg: &AlertsConfig, lang: &str, text: &str) -> Option<String> {
    let voice = speech::voice(&cfg.speech, lang);
    let p = speech::cache_path(&cfg.speech, &cfg.sounds_dir, &voice, text);
    p.is_file().then(|| playable(&p))
}

/// A sound file for Asterisk: the path without `.wav`.
fn playable(p: &Path) -> String {
    p.with_extension("").to_string_lossy().into_owned()
}

/// Run as root, becomes the one owner of `outgoing/` and the state
/// directory ([`crate::fsio::choose_owner`]).
fn act_as_owner(cfg: &AlertsConfig) -> Result<(), PagerError> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let outgoing = cfg.spool_dir.join("outgoing");
    let sm = std::fs::metadata(&cfg.state_dir).ok();
    let (uid, gid) = match std::fs::metadata(&outgoing) {
        Ok(om) => crate::fsio::choose_owner(
            (&outgoing, (om.uid(), om.gid())),
            sm.as_ref()
                .map(|m| (cfg.state_dir.as_path(), (m.uid(), m.gid()))),
        )
        .map_err(PagerError::Owner)?,
        // outgoing/ unusable for a moment: the state directory says whose
        // the database is (the spool's failure is reported where it bites)
        Err(e) => match &sm {
            Some(m) => (m.uid(), m.gid()),
            None => return Err(PagerError::Owner(format!("{}: {e}", outgoing.display()))),
        },
    };
    crate::fsio::become_user(uid, gid)
        .map(|_| ())
        .map_err(|e| PagerError::Owner(format!("cannot act as uid {uid}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owed_work_is_late_after_thirty_seconds() {
        assert_eq!(owed_problem(&[], 1000), None);
        let owing = vec![("a".to_string(), 1000), ("b".to_string(), 1020)];
        assert_eq!(owed_problem(&owing, 1029), None);
        let p = owed_problem(&owing, 1030).unwrap();
        assert!(
            p.starts_with("1 alert(s)") && p.contains("a, for 30 s"),
            "{p}"
        );
        let p = owed_problem(&owing, 1100).unwrap();
        assert!(p.starts_with("2 alert(s)"), "{p}");
    }

    #[test]
    fn a_late_publish_moves_the_plan_to_now() {
        // published at once: as planned
        assert_eq!(late_by(&[1000, 1120, 1420], 1000), 0);
        assert_eq!(late_by(&[1000, 1120, 1420], 1029), 0);
        // 10 minutes late: every call moved by 10 minutes, order kept
        assert_eq!(late_by(&[1000, 1120, 1420], 1600), 600);
        // only the later steps are owed, and they are not due yet
        assert_eq!(late_by(&[1120, 1420], 1100), 0);
        assert_eq!(late_by(&[], 5000), 0);
    }

    #[test]
    fn the_gate_lets_n_through_and_times_out() {
        let g = Gate::new(2);
        let a = g.enter(None).unwrap();
        let _b = g.enter(None).unwrap();
        let soon = Instant::now() + Duration::from_millis(30);
        assert!(g.enter(Some(soon)).is_none());
        drop(a);
        assert!(g.enter(Some(Instant::now())).is_some());
    }

    #[test]
    fn monitoring_requests_are_fitted_never_refused() {
        let labels: BTreeMap<String, String> = (0..70)
            .map(|i| (format!("k{i}"), "x".repeat(300)))
            .collect();
        let r = RaiseRequest::fitted("am-1".into(), &"t".repeat(5000), None, &labels);
        assert!(check_request(&r).is_ok());
        assert_eq!(r.labels.len(), MAX_LABELS);
        assert_eq!(r.labels_cut, 70);
        assert_eq!(r.text.len(), MAX_TEXT);
    }
}
