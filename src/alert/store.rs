//! The alert state in SQLite, `<state_dir>/alerts.db`: WAL, a busy timeout,
//! a schema version with migrations; every change one `BEGIN IMMEDIATE`
//! transaction, so of two acknowledgements at the same moment exactly one
//! wins, whichever process (AGI, command line, web receiver) makes it.
//!
//! The database is also the ledger of what the spool owes: each call row
//! says whether its file was published and whether its removal is still
//! owed after a cancel, so a publish or a removal that failed is finished
//! by whoever comes next (see [`crate::alert::pager`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ValueRef};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{call_file_name, AlertState, Outcome, Planned};
use crate::heartbeat::Hb;

/// How long a writer waits for another one.
const BUSY: Duration = Duration::from_secs(10);

/// The migrations, in order; `user_version` is how many ran. Never reorder.
const MIGRATIONS: &[&str] = &[
    // 1: alerts, their episodes, the planned calls
    "CREATE TABLE alerts (
        id TEXT PRIMARY KEY,
        episode INTEGER NOT NULL
    );
    CREATE TABLE episodes (
        alert_id TEXT NOT NULL REFERENCES alerts(id),
        episode INTEGER NOT NULL,
        text TEXT NOT NULL,
        labels TEXT NOT NULL,
        chain TEXT NOT NULL,
        state TEXT NOT NULL,
        raised_at INTEGER NOT NULL,
        acked_by TEXT,
        acked_at INTEGER,
        resolved_at INTEGER,
        ended_at INTEGER,
        published INTEGER NOT NULL DEFAULT 0,
        sounds TEXT NOT NULL DEFAULT '{}',
        speech_error TEXT,
        PRIMARY KEY (alert_id, episode)
    );
    CREATE TABLE calls (
        id INTEGER PRIMARY KEY,
        alert_id TEXT NOT NULL,
        episode INTEGER NOT NULL,
        contact TEXT NOT NULL,
        number TEXT NOT NULL,
        step INTEGER NOT NULL,
        round INTEGER NOT NULL,
        at INTEGER NOT NULL,
        file TEXT NOT NULL UNIQUE,
        outcome TEXT NOT NULL,
        outcome_at INTEGER,
        FOREIGN KEY (alert_id, episode) REFERENCES episodes(alert_id, episode)
    );
    CREATE INDEX calls_by_episode ON calls(alert_id, episode);",
    // 2: what each call file still owes the spool (published; removal owed
    // after a cancel), when an episode ran out (a counter that never goes
    // down) and how many labels were cut to fit the bounds
    "ALTER TABLE calls ADD COLUMN published INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE calls ADD COLUMN removal_owed INTEGER NOT NULL DEFAULT 0;
    UPDATE calls SET published = 1 WHERE EXISTS (SELECT 1 FROM episodes e
        WHERE e.alert_id = calls.alert_id AND e.episode = calls.episode AND e.published = 1);
    ALTER TABLE episodes ADD COLUMN unacked_at INTEGER;
    UPDATE episodes SET unacked_at = ended_at WHERE acked_at IS NULL AND ended_at IS NOT NULL
        AND (resolved_at IS NULL OR ended_at < resolved_at);
    ALTER TABLE episodes ADD COLUMN labels_cut INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX calls_owed ON calls(alert_id) WHERE removal_owed = 1
        OR (published = 0 AND outcome = 'scheduled');",
    // 3: on-call schedules: the schedule a call came from and why it chose
    // that person; overrides (ids never reused: the latest created wins)
    "ALTER TABLE calls ADD COLUMN schedule TEXT;
    ALTER TABLE calls ADD COLUMN why TEXT;
    CREATE INDEX calls_to_come ON calls(at) WHERE outcome IN ('scheduled', 'nobody_on_call');
    CREATE TABLE overrides (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule TEXT NOT NULL,
        contact TEXT NOT NULL,
        from_at INTEGER NOT NULL,
        to_at INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX overrides_by_schedule ON overrides(schedule, to_at);",
    // 4: heartbeats: state, deadline, the timer call file, and what is
    // still owed (the timer's publish, old timers' removal, the alert's
    // raise or resolve)
    "CREATE TABLE heartbeats (
        name TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        last_ping INTEGER,
        deadline INTEGER,
        timer_file TEXT,
        timer_at INTEGER,
        timer_published INTEGER NOT NULL DEFAULT 0,
        remove TEXT NOT NULL DEFAULT '[]',
        raise_owed INTEGER NOT NULL DEFAULT 0,
        resolve_owed INTEGER NOT NULL DEFAULT 0,
        seq INTEGER NOT NULL DEFAULT 0
    );",
    // 5: how each acknowledgement came in (a key press on a call, the line,
    // the command line, HTTP, the web page); earlier phone acks are known
    // by their answered_acked call, the rest stay unknown (null)
    "ALTER TABLE episodes ADD COLUMN acked_via TEXT;
    UPDATE episodes SET acked_via = 'call' WHERE acked_at IS NOT NULL AND EXISTS (
        SELECT 1 FROM calls c WHERE c.alert_id = episodes.alert_id
        AND c.episode = episodes.episode AND c.outcome = 'answered_acked');",
    // 6: wrong PINs on the alert line, by calling number (a lockout
    // survives restarts)
    "CREATE TABLE line_failures (
        number TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE INDEX line_failures_by_number ON line_failures(number, at);",
];

/// A store failure, naming the database and what was being done; the
/// SQLite error, when there is one, is the source.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct StoreError {
    pub path: PathBuf,
    pub what: String,
    #[source]
    pub source: Option<rusqlite::Error>,
}

/// A word column read back into its enum: a word this program does not
/// know is a conversion error naming it (`what`), never a default.
fn word<T>(v: ValueRef<'_>, what: &str, parse: fn(&str) -> Option<T>) -> FromSqlResult<T> {
    let s = v.as_str()?;
    parse(s).ok_or_else(|| {
        FromSqlError::Other(
            format!("unknown {what} {:?}", crate::escape_bytes(s.as_bytes())).into(),
        )
    })
}

impl FromSql for AlertState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        word(v, "alert state", AlertState::parse)
    }
}

impl FromSql for crate::heartbeat::HbState {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        word(v, "heartbeat state", crate::heartbeat::HbState::parse)
    }
}

impl FromSql for super::Via {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        word(v, "acknowledgement channel", super::Via::parse)
    }
}

impl FromSql for Outcome {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        word(v, "call outcome", Outcome::parse)
    }
}

/// A JSON map column (labels, sounds); a malformed one is an error naming
/// the column, never an empty map.
fn json_map(r: &rusqlite::Row, i: usize) -> rusqlite::Result<BTreeMap<String, String>> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// A planned call with its number, before it has an id.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub plan: Planned,
    pub number: String,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallRow {
    pub id: i64,
    #[serde(skip)]
    pub episode: u32,
    pub contact: String,
    pub number: String,
    pub step: u32,
    pub round: u32,
    #[serde(serialize_with = "super::ser_time")]
    pub at: i64,
    pub file: String,
    pub outcome: Outcome,
    /// The schedule that chose the contact (`None`: named in the chain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Why the schedule chose them (`layer weekly`, `override 3`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

#[cfg(test)]
impl CallRow {
    /// A call of episode 1, step and round 0, as unit tests build one.
    pub(crate) fn sample(id: i64, contact: &str, at: i64, outcome: Outcome) -> CallRow {
        CallRow {
            id,
            episode: 1,
            contact: contact.into(),
            number: "1".into(),
            step: 0,
            round: 0,
            at,
            file: String::new(),
            outcome,
            schedule: None,
            why: None,
        }
    }
}

/// One alert as `show` prints it (its current episode). Its JSON (derived)
/// is what `show --json`, `list --json` (without `calls`) and the HTTP API
/// print; times are RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlertView {
    pub id: String,
    pub episode: u32,
    pub state: AlertState,
    pub text: String,
    pub chain: String,
    pub labels: BTreeMap<String, String>,
    /// Labels dropped or shortened to fit the bounds (0: none).
    pub labels_cut: u32,
    #[serde(serialize_with = "super::ser_time")]
    pub raised_at: i64,
    pub acked_by: Option<String>,
    #[serde(serialize_with = "super::ser_opt_time")]
    pub acked_at: Option<i64>,
    /// How the acknowledgement came in (null: before this was recorded).
    pub acked_via: Option<super::Via>,
    #[serde(serialize_with = "super::ser_opt_time")]
    pub resolved_at: Option<i64>,
    #[serde(skip)]
    pub sounds: BTreeMap<String, String>,
    pub speech_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallRow>>,
}

/// Totals of the whole database, for metrics. Every `*_total` only grows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Current episodes by state.
    pub open_by_state: Vec<(String, i64)>,
    /// Episodes raised, acknowledged, resolved, run out unacknowledged
    /// (each counted once, when it happened; never taken back).
    pub raised: i64,
    pub acked: i64,
    pub resolved: i64,
    pub unacknowledged: i64,
    /// Calls planned, ever.
    pub calls_planned: i64,
    /// Calls by their outcome now (a gauge: `scheduled` ones move on).
    pub calls: Vec<(String, i64)>,
    /// Seconds from raise to acknowledgement, one per acked episode.
    pub ack_delays: Vec<i64>,
}

/// A new alert or episode.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub id: &'a str,
    pub text: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub labels_cut: u32,
    pub chain: &'a str,
    pub sounds: &'a BTreeMap<String, String>,
    pub speech_error: Option<&'a str>,
}

/// What a raise did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// A new episode with these calls, to publish.
    New { episode: u32, calls: Vec<CallRow> },
    /// The alert was firing or acked: only its text changed (`changed`
    /// false: the same text, a duplicate).
    Updated {
        episode: u32,
        state: AlertState,
        changed: bool,
    },
}

/// What an acknowledgement or a resolution did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Done; this many scheduled calls were cancelled (their files are
    /// owed a removal).
    Done { cancelled: usize },
    /// Nothing to do: the alert was already in this state.
    Already {
        state: AlertState,
        by: Option<String>,
    },
}

/// What an acknowledgement from a phone did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneAck {
    /// This call's key press won; this many other calls were cancelled.
    Won { alert_id: String, cancelled: usize },
    /// The alert was no longer firing (someone else was first).
    Stale { alert_id: String, state: AlertState },
}

/// What recording a call's outcome did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; `unacked` names the alert when its chain just ran out.
    Done { unacked: Option<String> },
    /// No such call in the database.
    UnknownCall,
}

/// What the AGI needs to know about its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    pub alert_id: String,
    pub episode: u32,
    pub contact: String,
    pub number: String,
    pub outcome: Outcome,
    /// The state of the call's episode (a later episode makes it stale).
    pub state: AlertState,
    pub current: bool,
    pub text: String,
    pub sounds: BTreeMap<String, String>,
}

impl CallInfo {
    /// Should this call still say its alert? Only while its episode is
    /// the current one and firing; else it is stale.
    pub fn is_live(&self) -> bool {
        self.current && self.state == AlertState::Firing
    }
}

/// What the spool still owes one alert: calls to publish (committed, not
/// yet in `outgoing/`) and files to remove (cancelled calls).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owed {
    pub publish: Vec<CallRow>,
    pub remove: Vec<(i64, String)>,
}

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// How long opening waits for another process creating or migrating the
/// database.
const CREATE_LOCK: Duration = Duration::from_secs(30);

impl Store {
    /// Opens (creating it and `dir` if needed) `<dir>/alerts.db`, in WAL
    /// mode, migrated to this binary's schema. A database newer than the
    /// binary is refused. Creation, the switch to WAL and migrations run
    /// under an exclusive lock (`alerts.db.lock`): two processes creating
    /// a new database at once would otherwise see "database is locked".
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("alerts.db");
        let fail = |what: String, source: Option<rusqlite::Error>| StoreError {
            path: path.clone(),
            what,
            source,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| fail(format!("cannot create the directory: {e}"), None))?;
        let _guard = crate::fsio::lock(&dir.join("alerts.db.lock"), CREATE_LOCK)
            .map_err(|e| fail(format!("cannot lock alerts.db.lock: {e}"), None))?;
        let conn = Connection::open(&path).map_err(|e| fail("cannot open".into(), Some(e)))?;
        conn.busy_timeout(BUSY)
            .map_err(|e| fail("busy_timeout".into(), Some(e)))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| fail("journal_mode".into(), Some(e)))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!("journal_mode is {mode}, not wal"), None));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| fail("pragmas".into(), Some(e)))?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    /// The database's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        let what = what.to_string();
        move |e| StoreError {
            path: self.path.clone(),
            what: what.clone(),
            source: Some(e),
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let known = MIGRATIONS.len() as i64;
        // Up to date (every open but the first): no write transaction.
        let now: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("read the schema version"))?;
        if now == known {
            return Ok(());
        }
        let v = self.in_tx("migration", |tx| {
            let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if v > known {
                return Ok(Some(v));
            }
            for m in &MIGRATIONS[v as usize..] {
                tx.execute_batch(m)?;
            }
            tx.pragma_update(None, "user_version", known)?;
            Ok(None)
        })?;
        match v {
            None => Ok(()),
            Some(v) => Err(StoreError {
                path: self.path.clone(),
                what: format!(
                    "schema version {v} is newer than this program's {known}; upgrade the program"
                ),
                source: None,
            }),
        }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction (committed when it
    /// returns `Ok`).
    fn in_tx<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let e = |e: rusqlite::Error| StoreError {
            path: path.clone(),
            what: what.to_string(),
            source: Some(e),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(e)?;
        let v = f(&tx).map_err(e)?;
        tx.commit().map_err(e)?;
        Ok(v)
    }

    /// The current episode of `id`: (episode, state, text); `None` for an
    /// unknown id.
    pub fn peek(&self, id: &str) -> Result<Option<(u32, AlertState, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT e.episode, e.state, e.text FROM alerts a JOIN episodes e
                 ON e.alert_id = a.id AND e.episode = a.episode WHERE a.id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(self.err("read the alert"))
    }

    /// Raises `a`: a new episode with `planned` calls (when the alert is
    /// new, resolved or unacknowledged), or only a new text (when it is
    /// firing or acked). One transaction; the calls are then owed to the
    /// spool until [`Store::mark_call_published`].
    pub fn raise(
        &mut self,
        a: &NewAlert,
        planned: &[PlannedCall],
        t: i64,
    ) -> Result<Raised, StoreError> {
        let labels = serde_json::to_string(a.labels).unwrap_or_else(|_| "{}".into());
        let sounds = serde_json::to_string(a.sounds).unwrap_or_else(|_| "{}".into());
        self.in_tx("raise", |tx| {
            let cur: Option<(u32, AlertState, String)> = tx
                .query_row(
                    "SELECT e.episode, e.state, e.text FROM alerts a JOIN episodes e
                     ON e.alert_id = a.id AND e.episode = a.episode WHERE a.id = ?1",
                    [a.id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((ep, state, old_text)) = &cur {
                if state.is_open() {
                    let changed = *old_text != a.text;
                    if changed {
                        tx.execute(
                            "UPDATE episodes SET text = ?1, sounds = ?2, speech_error = ?3
                             WHERE alert_id = ?4 AND episode = ?5",
                            params![a.text, sounds, a.speech_error, a.id, ep],
                        )?;
                    }
                    return Ok(Raised::Updated {
                        episode: *ep,
                        state: *state,
                        changed,
                    });
                }
            }
            let episode = cur.map_or(1, |(ep, _, _)| ep + 1);
            tx.execute(
                "INSERT INTO alerts (id, episode) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET episode = excluded.episode",
                params![a.id, episode],
            )?;
            tx.execute(
                "INSERT INTO episodes (alert_id, episode, text, labels, chain, state, raised_at,
                 sounds, speech_error, labels_cut)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'firing', ?6, ?7, ?8, ?9)",
                params![
                    a.id,
                    episode,
                    a.text,
                    labels,
                    a.chain,
                    t,
                    sounds,
                    a.speech_error,
                    a.labels_cut
                ],
            )?;
            let mut calls = Vec::new();
            for p in planned {
                let at = t + p.plan.offset as i64;
                calls.push(insert_call(tx, a.id, episode, p, at, 0)?);
            }
            if !calls.iter().any(|c| c.outcome == Outcome::Scheduled) {
                // nobody could be called at all: the chain ran out now
                tx.execute(
                    "UPDATE episodes SET state = 'unacknowledged', ended_at = ?3,
                     unacked_at = ?3 WHERE alert_id = ?1 AND episode = ?2",
                    params![a.id, episode, t],
                )?;
            }
            Ok(Raised::New { episode, calls })
        })
    }

    /// What the spool still owes alert `id`: its scheduled calls not yet
    /// published, its cancelled calls whose files may still be there.
    pub fn owed(&self, id: &str) -> Result<Owed, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, contact, number, step, round, at, file, outcome, episode,
                 schedule, why, removal_owed FROM calls WHERE alert_id = ?1
                 AND (removal_owed = 1 OR (published = 0 AND outcome = 'scheduled'))
                 ORDER BY at, round, step, id",
            )
            .map_err(self.err("read what is owed"))?;
        let rows = st
            .query_map([id], |r| Ok((call_row(r)?, r.get::<_, bool>(11)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(self.err("read what is owed"))?;
        let mut owed = Owed::default();
        for (c, removal) in rows {
            if removal {
                owed.remove.push((c.id, c.file));
            } else {
                owed.publish.push(c);
            }
        }
        Ok(owed)
    }

    /// The alerts the spool owes something, and since when (the raise of
    /// an unpublished call, the cancel of a file not yet removed), oldest
    /// first.
    pub fn owing(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT c.alert_id, MIN(CASE WHEN c.removal_owed = 1
                     THEN COALESCE(c.outcome_at, e.raised_at) ELSE e.raised_at END)
                 FROM calls c JOIN episodes e ON e.alert_id = c.alert_id AND e.episode = c.episode
                 WHERE c.removal_owed = 1 OR (c.published = 0 AND c.outcome = 'scheduled')
                 GROUP BY c.alert_id ORDER BY 2",
            )
            .map_err(self.err("read what is owed"))?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err("read what is owed"))
    }

    /// Records, in one transaction, the calls whose files are now in
    /// `outgoing/` (with the time each was published for) and those whose
    /// files are gone from it.
    pub fn mark_settled(
        &mut self,
        published: &[(i64, i64)],
        removed: &[i64],
    ) -> Result<(), StoreError> {
        self.in_tx("record what the spool holds", |tx| {
            let mut p =
                tx.prepare_cached("UPDATE calls SET published = 1, at = ?2 WHERE id = ?1")?;
            for (id, at) in published {
                p.execute([id, at])?;
            }
            let mut r = tx.prepare_cached("UPDATE calls SET removal_owed = 0 WHERE id = ?1")?;
            for id in removed {
                r.execute([id])?;
            }
            Ok(())
        })
    }

    fn calls(&self, id: &str, episode: u32) -> Result<Vec<CallRow>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, contact, number, step, round, at, file, outcome, episode, schedule,
                 why FROM calls WHERE alert_id = ?1 AND episode = ?2
                 ORDER BY at, round, step, id",
            )
            .map_err(self.err("read the calls"))?;
        let rows: Vec<(i64, rusqlite::Result<CallRow>)> = st
            .query_map(params![id, episode], |r| Ok((r.get(0)?, call_row(r))))
            .and_then(|rows| rows.collect())
            .map_err(self.err("read the calls"))?;
        rows.into_iter()
            .map(|(call, row)| {
                row.map_err(|e| StoreError {
                    path: self.path.clone(),
                    what: format!("call {call} of alert {id}: unreadable row"),
                    source: Some(e),
                })
            })
            .collect()
    }

    /// Cancels the calls still scheduled of an episode (inside `tx`): their
    /// files are owed a removal. Returns how many.
    fn cancel_rest(
        tx: &rusqlite::Transaction,
        id: &str,
        episode: u32,
        t: i64,
    ) -> rusqlite::Result<usize> {
        tx.execute(
            "UPDATE calls SET outcome = 'cancelled', outcome_at = ?3, removal_owed = 1
             WHERE alert_id = ?1 AND episode = ?2 AND outcome = 'scheduled'",
            params![id, episode, t],
        )
    }

    /// The current episode and its state; `None` for an unknown id.
    fn current(
        tx: &rusqlite::Transaction,
        id: &str,
    ) -> rusqlite::Result<Option<(u32, AlertState, Option<String>)>> {
        tx.query_row(
            "SELECT e.episode, e.state, e.acked_by FROM alerts a JOIN episodes e
             ON e.alert_id = a.id AND e.episode = a.episode WHERE a.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
    }

    /// Acknowledges alert `id` (from the command line, the web or the
    /// alert line): a firing or unacknowledged alert becomes acked; the
    /// calls still scheduled are cancelled. `None` for an unknown id.
    /// With `episode`, only that episode (the one the caller heard): a
    /// later one is left alone and the answer is `Already` with the state
    /// of the episode heard.
    pub fn ack(
        &mut self,
        id: &str,
        episode: Option<u32>,
        by: &str,
        via: super::Via,
        t: i64,
    ) -> Result<Option<Change>, StoreError> {
        self.in_tx("acknowledge", |tx| {
            let Some((ep, state, acked_by)) = Self::current(tx, id)? else {
                return Ok(None);
            };
            if let Some(heard) = episode.filter(|&e| e != ep) {
                let old: Option<(AlertState, Option<String>)> = tx
                    .query_row(
                        "SELECT state, acked_by FROM episodes WHERE alert_id = ?1 AND episode = ?2",
                        params![id, heard],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                let Some((state, by)) = old else {
                    return Ok(None);
                };
                // an earlier episode is over even if its row says otherwise
                let state = match state {
                    AlertState::Firing | AlertState::Unacknowledged => AlertState::Resolved,
                    s => s,
                };
                return Ok(Some(Change::Already { state, by }));
            }
            if !matches!(state, AlertState::Firing | AlertState::Unacknowledged) {
                return Ok(Some(Change::Already {
                    state,
                    by: acked_by,
                }));
            }
            tx.execute(
                "UPDATE episodes SET state = 'acked', acked_by = ?3, acked_at = ?4,
                 ended_at = COALESCE(ended_at, ?4), acked_via = ?5
                 WHERE alert_id = ?1 AND episode = ?2",
                params![id, ep, by, t, via.as_str()],
            )?;
            let cancelled = Self::cancel_rest(tx, id, ep, t)?;
            Ok(Some(Change::Done { cancelled }))
        })
    }

    /// Resolves alert `id`: the calls still scheduled are cancelled.
    /// `None` for an unknown id.
    pub fn resolve(&mut self, id: &str, t: i64) -> Result<Option<Change>, StoreError> {
        self.in_tx("resolve", |tx| {
            let Some((ep, state, acked_by)) = Self::current(tx, id)? else {
                return Ok(None);
            };
            if state == AlertState::Resolved {
                return Ok(Some(Change::Already {
                    state,
                    by: acked_by,
                }));
            }
            tx.execute(
                "UPDATE episodes SET state = 'resolved', resolved_at = ?3,
                 ended_at = COALESCE(ended_at, ?3) WHERE alert_id = ?1 AND episode = ?2",
                params![id, ep, t],
            )?;
            let cancelled = Self::cancel_rest(tx, id, ep, t)?;
            Ok(Some(Change::Done { cancelled }))
        })
    }

    /// A key press on call `call_id`: if its episode is still the current
    /// one and firing, it becomes acked by the call's contact and the other
    /// scheduled calls are cancelled; else the call was stale.
    pub fn ack_by_call(&mut self, call_id: i64, t: i64) -> Result<Option<PhoneAck>, StoreError> {
        self.in_tx("acknowledge by phone", |tx| {
            let Some((id, ep, contact)) = tx
                .query_row(
                    "SELECT alert_id, episode, contact FROM calls WHERE id = ?1",
                    [call_id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, u32>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()?
            else {
                return Ok(None);
            };
            let cur = Self::current(tx, &id)?;
            match cur {
                Some((cur_ep, AlertState::Firing, _)) if cur_ep == ep => {
                    tx.execute(
                        "UPDATE episodes SET state = 'acked', acked_by = ?3, acked_at = ?4,
                         ended_at = ?4, acked_via = 'call' WHERE alert_id = ?1 AND episode = ?2",
                        params![id, ep, contact, t],
                    )?;
                    tx.execute(
                        "UPDATE calls SET outcome = 'answered_acked', outcome_at = ?2 WHERE id = ?1",
                        params![call_id, t],
                    )?;
                    let cancelled = Self::cancel_rest(tx, &id, ep, t)?;
                    Ok(Some(PhoneAck::Won {
                        alert_id: id,
                        cancelled,
                    }))
                }
                other => {
                    tx.execute(
                        "UPDATE calls SET outcome = 'stale', outcome_at = ?2 WHERE id = ?1",
                        params![call_id, t],
                    )?;
                    let state = match other {
                        Some((e, s, _)) if e == ep => s,
                        // a later episode exists: this one is over
                        _ => AlertState::Resolved,
                    };
                    Ok(Some(PhoneAck::Stale {
                        alert_id: id,
                        state,
                    }))
                }
            }
        })
    }

    /// Records the outcome of call `call_id` (unless a final one is
    /// recorded already). When that was the last planned call of a firing
    /// episode, the episode becomes unacknowledged.
    pub fn record_outcome(
        &mut self,
        call_id: i64,
        outcome: Outcome,
        t: i64,
    ) -> Result<Recorded, StoreError> {
        self.in_tx("record an outcome", |tx| {
            let Some((id, ep)) = tx
                .query_row(
                    "SELECT alert_id, episode FROM calls WHERE id = ?1",
                    [call_id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)),
                )
                .optional()?
            else {
                return Ok(Recorded::UnknownCall);
            };
            tx.execute(
                "UPDATE calls SET outcome = ?2, outcome_at = ?3
                 WHERE id = ?1 AND outcome IN ('scheduled', 'cancelled')",
                params![call_id, outcome.as_str(), t],
            )?;
            let left: i64 = tx.query_row(
                "SELECT COUNT(*) FROM calls WHERE alert_id = ?1 AND episode = ?2
                 AND outcome = 'scheduled'",
                params![id, ep],
                |r| r.get(0),
            )?;
            if left == 0 {
                let n = tx.execute(
                    "UPDATE episodes SET state = 'unacknowledged', ended_at = ?3, unacked_at = ?3
                     WHERE alert_id = ?1 AND episode = ?2 AND state = 'firing'",
                    params![id, ep, t],
                )?;
                if n == 1 {
                    return Ok(Recorded::Done { unacked: Some(id) });
                }
            }
            Ok(Recorded::Done { unacked: None })
        })
    }

    /// What the AGI needs for call `call_id`.
    pub fn call_info(&self, call_id: i64) -> Result<Option<CallInfo>, StoreError> {
        self.conn
            .query_row(
                "SELECT c.alert_id, c.episode, c.contact, c.number, c.outcome, e.state, e.text,
                 e.sounds, a.episode FROM calls c
                 JOIN episodes e ON e.alert_id = c.alert_id AND e.episode = c.episode
                 JOIN alerts a ON a.id = c.alert_id WHERE c.id = ?1",
                [call_id],
                |r| {
                    let ep: u32 = r.get(1)?;
                    let cur: u32 = r.get(8)?;
                    Ok(CallInfo {
                        alert_id: r.get(0)?,
                        episode: ep,
                        contact: r.get(2)?,
                        number: r.get(3)?,
                        outcome: r.get(4)?,
                        state: r.get(5)?,
                        current: ep == cur,
                        text: r.get(6)?,
                        sounds: json_map(r, 7)?,
                    })
                },
            )
            .optional()
            .map_err(self.err(&format!("read call {call_id}")))
    }

    /// Checks the database can be written now (a write lock taken and
    /// given back).
    pub fn check_writable(&mut self) -> Result<(), StoreError> {
        self.in_tx("take the write lock", |_| Ok(()))
    }

    /// Totals for metrics, read at scrape time (several processes write).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let e = self.err("count");
        let q = |sql: &str| -> Result<Vec<(String, i64)>, StoreError> {
            let mut st = self.conn.prepare_cached(sql).map_err(&e)?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(&e);
            rows
        };
        let one = |sql: &str| -> Result<i64, StoreError> {
            self.conn.query_row(sql, [], |r| r.get(0)).map_err(&e)
        };
        let mut st = self
            .conn
            .prepare_cached("SELECT acked_at - raised_at FROM episodes WHERE acked_at IS NOT NULL")
            .map_err(&e)?;
        let ack_delays = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(&e)?;
        Ok(Counts {
            open_by_state: q("SELECT e.state, COUNT(*) FROM alerts a JOIN episodes e
                 ON e.alert_id = a.id AND e.episode = a.episode GROUP BY e.state")?,
            raised: one("SELECT COUNT(*) FROM episodes")?,
            acked: one("SELECT COUNT(*) FROM episodes WHERE acked_at IS NOT NULL")?,
            resolved: one("SELECT COUNT(*) FROM episodes WHERE resolved_at IS NOT NULL")?,
            unacknowledged: one("SELECT COUNT(*) FROM episodes WHERE unacked_at IS NOT NULL")?,
            calls_planned: one("SELECT COUNT(*) FROM calls")?,
            calls: q("SELECT outcome, COUNT(*) FROM calls GROUP BY outcome")?,
            ack_delays,
        })
    }

    /// Alert `id` (its current episode) with its calls.
    pub fn show(&self, id: &str) -> Result<Option<AlertView>, StoreError> {
        let v = self.views(Some(id), true)?;
        Ok(v.into_iter().next())
    }

    /// The alerts not resolved, newest first: id, episode, state only
    /// (what the alert line needs to begin; it reads each one as it says
    /// it).
    pub fn open_alerts(&self) -> Result<Vec<(String, u32, AlertState)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT e.alert_id, e.episode, e.state FROM alerts a JOIN episodes e
                 ON e.alert_id = a.id AND e.episode = a.episode
                 WHERE e.state != 'resolved' ORDER BY e.raised_at DESC, e.rowid DESC",
            )
            .map_err(self.err("list"))?;
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(self.err("list"))
    }

    /// Every alert (with `all`) or those not resolved, newest first,
    /// without calls.
    pub fn list(&self, all: bool) -> Result<Vec<AlertView>, StoreError> {
        let mut v = self.views(None, false)?;
        if !all {
            v.retain(|a| a.state != AlertState::Resolved);
        }
        Ok(v)
    }

    fn views(&self, id: Option<&str>, with_calls: bool) -> Result<Vec<AlertView>, StoreError> {
        self.views_where(
            "FROM alerts a JOIN episodes e ON e.alert_id = a.id AND e.episode = a.episode
             WHERE ?1 IS NULL OR a.id = ?1 ORDER BY e.raised_at DESC, e.rowid DESC",
            params![id],
            with_calls,
        )
    }

    /// What the status page shows: the current episodes that are firing
    /// or acked (every one), then the last `recent` that ended (resolved
    /// or unacknowledged), each with its calls.
    pub fn dashboard(&self, recent: usize) -> Result<Vec<AlertView>, StoreError> {
        let mut v = self.views_where(
            "FROM alerts a JOIN episodes e ON e.alert_id = a.id AND e.episode = a.episode
             WHERE e.state IN ('firing', 'acked') ORDER BY e.raised_at DESC, e.rowid DESC",
            params![],
            true,
        )?;
        v.extend(self.views_where(
            "FROM alerts a JOIN episodes e ON e.alert_id = a.id AND e.episode = a.episode
             WHERE e.state IN ('resolved', 'unacknowledged')
             ORDER BY COALESCE(e.ended_at, e.raised_at) DESC, e.rowid DESC LIMIT ?1",
            params![recent as i64],
            true,
        )?);
        Ok(v)
    }

    /// Every episode of alert `id`, the latest first, each with its calls.
    pub fn history(&self, id: &str) -> Result<Vec<AlertView>, StoreError> {
        self.views_where(
            "FROM episodes e WHERE e.alert_id = ?1 ORDER BY e.episode DESC",
            params![id],
            true,
        )
    }

    /// Alert views from `from_where` (a `FROM ... WHERE ... ORDER BY`
    /// over episodes `e`) with `args`.
    fn views_where(
        &self,
        from_where: &str,
        args: &[&dyn rusqlite::ToSql],
        with_calls: bool,
    ) -> Result<Vec<AlertView>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT e.alert_id, e.episode, e.state, e.text, e.chain, e.labels, e.raised_at,
                 e.acked_by, e.acked_at, e.resolved_at, e.sounds, e.speech_error, e.labels_cut,
                 e.acked_via {from_where}"
            ))
            .map_err(self.err("list"))?;
        // A value this program does not know (a state written by a newer
        // one, a damaged row) is an error naming the alert, never a default.
        let rows: Vec<Result<AlertView, (String, rusqlite::Error)>> = st
            .query_map(args, |r| {
                let id: String = r.get(0)?;
                let view = (|| {
                    Ok(AlertView {
                        id: id.clone(),
                        episode: r.get(1)?,
                        state: r.get(2)?,
                        text: r.get(3)?,
                        chain: r.get(4)?,
                        labels: json_map(r, 5)?,
                        raised_at: r.get(6)?,
                        acked_by: r.get(7)?,
                        acked_at: r.get(8)?,
                        resolved_at: r.get(9)?,
                        sounds: json_map(r, 10)?,
                        speech_error: r.get(11)?,
                        labels_cut: r.get(12)?,
                        acked_via: r.get(13)?,
                        calls: None,
                    })
                })();
                Ok(view.map_err(|e| (id, e)))
            })
            .and_then(|rows| rows.collect())
            .map_err(self.err("list"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(row.map_err(|(id, e)| StoreError {
                path: self.path.clone(),
                what: format!(
                    "alert {}: unreadable row",
                    crate::escape_bytes(id.as_bytes())
                ),
                source: Some(e),
            })?);
        }
        if with_calls {
            for a in &mut out {
                a.calls = Some(self.calls(&a.id, a.episode)?);
            }
        }
        Ok(out)
    }
}

/// One re-planned step of a round of an open alert: its schedules now
/// name other people.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replanned {
    pub alert_id: String,
    pub episode: u32,
    pub round: u32,
    pub step: u32,
    #[serde(serialize_with = "super::ser_time")]
    pub at: i64,
    /// Who the step was to call.
    pub before: Vec<String>,
    /// Who it calls now.
    pub after: Vec<String>,
    /// Its schedules that have nobody on call then (each recorded
    /// `nobody_on_call`).
    pub nobody_on_call: Vec<String>,
}

/// A call still to come, as read for a re-plan.
struct Pending {
    id: i64,
    alert_id: String,
    episode: u32,
    round: u32,
    step: u32,
    chain: String,
    contact: String,
    schedule: Option<String>,
    at: i64,
    outcome: Outcome,
}

impl Store {
    /// Stores an override (`from` < `to`, checked by the caller).
    pub fn add_override(
        &mut self,
        schedule: &str,
        contact: &str,
        from: i64,
        to: i64,
        now: i64,
    ) -> Result<crate::oncall::view::OverrideView, StoreError> {
        self.in_tx("add an override", |tx| {
            tx.execute(
                "INSERT INTO overrides (schedule, contact, from_at, to_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![schedule, contact, from, to, now],
            )?;
            Ok(crate::oncall::view::OverrideView {
                id: tx.last_insert_rowid(),
                schedule: schedule.to_string(),
                contact: contact.to_string(),
                from,
                to,
                created_at: now,
            })
        })
    }

    /// Removes override `id`; `None` when there is none.
    pub fn remove_override(
        &mut self,
        id: i64,
    ) -> Result<Option<crate::oncall::view::OverrideView>, StoreError> {
        self.in_tx("remove an override", |tx| {
            let o = tx
                .query_row(
                    "SELECT id, schedule, contact, from_at, to_at, created_at FROM overrides
                     WHERE id = ?1",
                    [id],
                    override_row,
                )
                .optional()?;
            if o.is_some() {
                tx.execute("DELETE FROM overrides WHERE id = ?1", [id])?;
            }
            Ok(o)
        })
    }

    /// A mark that changes whenever an override is added or removed (the
    /// highest id and the count).
    pub fn overrides_mark(&self) -> Result<(i64, i64), StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(id), 0), COUNT(*) FROM overrides",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(self.err("read the overrides"))
    }

    /// The overrides of `schedule` (every schedule: `None`) that end after
    /// `after`, by id.
    pub fn overrides(
        &self,
        schedule: Option<&str>,
        after: i64,
    ) -> Result<Vec<crate::oncall::view::OverrideView>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT id, schedule, contact, from_at, to_at, created_at FROM overrides
                 WHERE (?1 IS NULL OR schedule = ?1) AND to_at > ?2 ORDER BY id",
            )
            .map_err(self.err("read the overrides"))?;
        st.query_map(params![schedule, after], override_row)
            .and_then(|rows| rows.collect())
            .map_err(self.err("read the overrides"))
    }

    /// Re-plans, in one transaction, the steps still to come (due after
    /// `after`) of firing alerts: `desired(chain, round, step, at)` plans
    /// the step again for its instant (`None`: leave it, the chain or step
    /// is gone from the config). Where the people differ, the calls no
    /// longer wanted become `replanned` (their files owed a removal) and
    /// the new ones are added under new file names (owed a publish).
    pub fn replan(
        &mut self,
        after: i64,
        now: i64,
        desired: impl Fn(&str, u32, u32, i64) -> Option<Vec<PlannedCall>>,
    ) -> Result<Vec<Replanned>, StoreError> {
        self.in_tx("re-plan", |tx| {
            let mut st = tx.prepare_cached(
                "SELECT c.id, c.alert_id, c.episode, c.round, c.step, e.chain, c.contact,
                 c.schedule, c.at, c.outcome FROM calls c
                 JOIN alerts a ON a.id = c.alert_id AND a.episode = c.episode
                 JOIN episodes e ON e.alert_id = c.alert_id AND e.episode = c.episode
                 WHERE c.outcome IN ('scheduled', 'nobody_on_call') AND c.at > ?1
                 AND e.state = 'firing'
                 ORDER BY c.alert_id, c.episode, c.round, c.step, c.id",
            )?;
            let rows: Vec<Pending> = st
                .query_map([after], |r| {
                    Ok(Pending {
                        id: r.get(0)?,
                        alert_id: r.get(1)?,
                        episode: r.get(2)?,
                        round: r.get(3)?,
                        step: r.get(4)?,
                        chain: r.get(5)?,
                        contact: r.get(6)?,
                        schedule: r.get(7)?,
                        at: r.get(8)?,
                        outcome: r.get(9)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let key = |p: &Pending| (p.contact.clone(), p.schedule.clone());
            let mut out = Vec::new();
            for group in rows.chunk_by(|a, b| {
                (&a.alert_id, a.episode, a.round, a.step)
                    == (&b.alert_id, b.episode, b.round, b.step)
            }) {
                let first = &group[0];
                let at = group.iter().map(|p| p.at).min().unwrap_or(first.at);
                let Some(want) = desired(&first.chain, first.round, first.step, at) else {
                    continue;
                };
                let want_key = |w: &PlannedCall| (w.plan.contact.clone(), w.plan.schedule.clone());
                let mut have: Vec<_> = group.iter().map(key).collect();
                let mut wanted: Vec<_> = want.iter().map(want_key).collect();
                have.sort();
                wanted.sort();
                if have == wanted {
                    continue;
                }
                for p in group.iter().filter(|p| !wanted.contains(&key(p))) {
                    tx.execute(
                        "UPDATE calls SET outcome = 'replanned', outcome_at = ?2,
                         removal_owed = ?3 WHERE id = ?1",
                        params![p.id, now, p.outcome == Outcome::Scheduled],
                    )?;
                }
                let version: u32 = tx.query_row(
                    "SELECT COUNT(*) FROM calls WHERE alert_id = ?1 AND episode = ?2
                     AND round = ?3 AND step = ?4",
                    params![first.alert_id, first.episode, first.round, first.step],
                    |r| r.get(0),
                )?;
                for w in want.iter().filter(|w| !have.contains(&want_key(w))) {
                    insert_call(tx, &first.alert_id, first.episode, w, at, version)?;
                }
                let people = |v: &[(String, Option<String>)]| -> Vec<String> {
                    v.iter()
                        .filter(|(c, _)| !c.is_empty())
                        .map(|(c, _)| c.clone())
                        .collect()
                };
                out.push(Replanned {
                    alert_id: first.alert_id.clone(),
                    episode: first.episode,
                    round: first.round,
                    step: first.step,
                    at,
                    before: people(&have),
                    after: people(&wanted),
                    nobody_on_call: wanted
                        .iter()
                        .filter(|(c, _)| c.is_empty())
                        .filter_map(|(_, s)| s.clone())
                        .collect(),
                });
            }
            Ok(out)
        })
    }
}

fn hb_row(r: &rusqlite::Row) -> rusqlite::Result<(String, Hb)> {
    let remove: String = r.get(7)?;
    let file: Option<String> = r.get(4)?;
    let at: Option<i64> = r.get(5)?;
    Ok((
        r.get(0)?,
        Hb {
            state: r.get(1)?,
            last_ping: r.get(2)?,
            deadline: r.get(3)?,
            timer: file.zip(at),
            timer_published: r.get(6)?,
            remove: serde_json::from_str(&remove).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    7,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?,
            raise_owed: r.get(8)?,
            resolve_owed: r.get(9)?,
            seq: r.get(10)?,
        },
    ))
}

const HB_COLUMNS: &str = "name, state, last_ping, deadline, timer_file, timer_at,
    timer_published, remove, raise_owed, resolve_owed, seq";

impl Store {
    /// Every heartbeat row (a configured one without a row was never
    /// pinged), by name.
    pub fn heartbeats(&self) -> Result<Vec<(String, Hb)>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(&format!(
                "SELECT {HB_COLUMNS} FROM heartbeats ORDER BY name"
            ))
            .map_err(self.err("read the heartbeats"))?;
        st.query_map([], hb_row)
            .and_then(|rows| rows.collect())
            .map_err(self.err("read the heartbeats"))
    }

    /// Changes heartbeat `name` in one transaction: `f` gets the stored
    /// record (the default when there is none) and returns the new one.
    pub fn heartbeat_update<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&Hb) -> (Hb, T),
    ) -> Result<(Hb, T), StoreError> {
        self.in_tx("change a heartbeat", |tx| {
            let cur = tx
                .query_row(
                    &format!("SELECT {HB_COLUMNS} FROM heartbeats WHERE name = ?1"),
                    [name],
                    hb_row,
                )
                .optional()?
                .map(|(_, h)| h)
                .unwrap_or_default();
            let (h, out) = f(&cur);
            let (file, at) = h.timer.clone().unzip();
            tx.execute(
                "INSERT INTO heartbeats (name, state, last_ping, deadline, timer_file, timer_at,
                 timer_published, remove, raise_owed, resolve_owed, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(name) DO UPDATE SET state = excluded.state,
                 last_ping = excluded.last_ping, deadline = excluded.deadline,
                 timer_file = excluded.timer_file, timer_at = excluded.timer_at,
                 timer_published = excluded.timer_published, remove = excluded.remove,
                 raise_owed = excluded.raise_owed, resolve_owed = excluded.resolve_owed,
                 seq = excluded.seq",
                params![
                    name,
                    h.state.as_str(),
                    h.last_ping,
                    h.deadline,
                    file,
                    at,
                    h.timer_published,
                    serde_json::to_string(&h.remove).unwrap_or_else(|_| "[]".into()),
                    h.raise_owed,
                    h.resolve_owed,
                    h.seq
                ],
            )?;
            Ok((h, out))
        })
    }

    /// The wrong PINs from `number` since `since`.
    pub fn pin_failures(&self, number: &str, since: i64) -> Result<Vec<i64>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached("SELECT at FROM line_failures WHERE number = ?1 AND at >= ?2")
            .map_err(self.err("read the line's failures"))?;
        st.query_map(params![number, since], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(self.err("read the line's failures"))
    }

    /// Records a wrong PIN from `number` at `at` (and forgets those older
    /// than `keep_after`).
    pub fn record_pin_failure(
        &mut self,
        number: &str,
        at: i64,
        keep_after: i64,
    ) -> Result<(), StoreError> {
        self.in_tx("record a wrong PIN", |tx| {
            tx.execute(
                "INSERT INTO line_failures (number, at) VALUES (?1, ?2)",
                params![number, at],
            )?;
            tx.execute("DELETE FROM line_failures WHERE at < ?1", [keep_after])?;
            Ok(())
        })
    }

    /// Forgets heartbeat `name` (it left the config and owes nothing).
    pub fn heartbeat_delete(&mut self, name: &str) -> Result<(), StoreError> {
        self.in_tx("forget a heartbeat", |tx| {
            tx.execute("DELETE FROM heartbeats WHERE name = ?1", [name])?;
            Ok(())
        })
    }
}

fn override_row(r: &rusqlite::Row) -> rusqlite::Result<crate::oncall::view::OverrideView> {
    Ok(crate::oncall::view::OverrideView {
        id: r.get(0)?,
        schedule: r.get(1)?,
        contact: r.get(2)?,
        from: r.get(3)?,
        to: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn call_row(r: &rusqlite::Row) -> rusqlite::Result<CallRow> {
    Ok(CallRow {
        id: r.get(0)?,
        contact: r.get(1)?,
        number: r.get(2)?,
        step: r.get(3)?,
        round: r.get(4)?,
        at: r.get(5)?,
        file: r.get(6)?,
        outcome: r.get(7)?,
        episode: r.get(8)?,
        schedule: r.get(9)?,
        why: r.get(10)?,
    })
}

/// Inserts one planned call of episode `episode` at `at` (a `.v{version}`
/// file name for a re-planned one); a row with nobody on call is recorded
/// `nobody_on_call` at once.
fn insert_call(
    tx: &rusqlite::Transaction,
    id: &str,
    episode: u32,
    p: &PlannedCall,
    at: i64,
    version: u32,
) -> rusqlite::Result<CallRow> {
    let file = call_file_name(id, episode, &p.plan, version);
    let outcome = if p.plan.is_nobody() {
        Outcome::NobodyOnCall
    } else {
        Outcome::Scheduled
    };
    let outcome_at = (outcome != Outcome::Scheduled).then_some(at);
    tx.execute(
        "INSERT INTO calls (alert_id, episode, contact, number, step, round, at, file,
         outcome, outcome_at, schedule, why)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            id,
            episode,
            p.plan.contact,
            p.number,
            p.plan.step,
            p.plan.round,
            at,
            file,
            outcome.as_str(),
            outcome_at,
            p.plan.schedule,
            p.plan.why
        ],
    )?;
    Ok(CallRow {
        id: tx.last_insert_rowid(),
        episode,
        contact: p.plan.contact.clone(),
        number: p.number.clone(),
        step: p.plan.step,
        round: p.plan.round,
        at,
        file,
        outcome,
        schedule: p.plan.schedule.clone(),
        why: p.plan.why.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of schema 4 (before `acked_via`): the migration knows a
    /// phone ack by its answered_acked call and leaves the others unknown.
    #[test]
    fn migration_5_finds_phone_acks_and_leaves_the_rest_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("alerts.db")).unwrap();
        for m in &MIGRATIONS[..4] {
            conn.execute_batch(m).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 4;
             INSERT INTO alerts VALUES ('p', 1), ('c', 1);
             INSERT INTO episodes (alert_id, episode, text, labels, chain, state, raised_at,
               acked_by, acked_at) VALUES
               ('p', 1, 't', '{}', 'x', 'acked', 1, 'ivan', 2),
               ('c', 1, 't', '{}', 'x', 'acked', 1, 'ops', 2);
             INSERT INTO calls (alert_id, episode, contact, number, step, round, at, file, outcome)
               VALUES ('p', 1, 'ivan', '1', 0, 0, 1, 'f1', 'answered_acked'),
                      ('c', 1, 'ivan', '1', 0, 0, 1, 'f2', 'cancelled');",
        )
        .unwrap();
        drop(conn);
        let s = Store::open(dir.path()).unwrap();
        let via = |id| s.show(id).unwrap().unwrap().acked_via;
        assert_eq!(via("p"), Some(super::super::Via::Call));
        assert_eq!(via("c"), None);
    }

    /// Ten wrong PINs from one number within an hour lock it for an hour,
    /// across restarts (a new connection reads them back); old ones go.
    #[test]
    fn wrong_pins_are_kept_and_lock_the_number() {
        let dir = tempfile::tempdir().unwrap();
        let t = 1_800_000_000;
        {
            let mut s = Store::open(dir.path()).unwrap();
            s.record_pin_failure("89161112233", t - 10 * 3600, 0)
                .unwrap();
            for i in 0..10 {
                s.record_pin_failure("89161112233", t + i * 30, t - 7200)
                    .unwrap();
            }
            s.record_pin_failure("84950000000", t, t - 7200).unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        let f = s.pin_failures("89161112233", 0).unwrap();
        assert_eq!(f.len(), 10, "the one from ten hours ago is gone");
        let until = crate::line::locked_until(&f, t + 300);
        assert_eq!(until, Some(t + 270 + 3600));
        assert_eq!(crate::line::locked_until(&f, t + 270 + 3600), None);
        let other = s.pin_failures("84950000000", 0).unwrap();
        assert_eq!(crate::line::locked_until(&other, t + 1), None);
    }

    /// The instant of an ack, a resolve or an outcome is the caller's (the
    /// pager passes the clock; a test any time); an ack of an episode that
    /// is not the current one changes nothing.
    #[test]
    fn times_are_the_callers_and_an_old_episode_is_not_acked() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(dir.path()).unwrap();
        s.conn
            .execute_batch(
                "INSERT INTO alerts VALUES ('a', 2);
                 INSERT INTO episodes (alert_id, episode, text, labels, chain, state, raised_at,
                   ended_at) VALUES ('a', 1, 't', '{}', 'x', 'resolved', 100, 200),
                                    ('a', 2, 't', '{}', 'x', 'firing', 1000, NULL);
                 INSERT INTO calls (alert_id, episode, contact, number, step, round, at, file,
                   outcome, published) VALUES
                   ('a', 2, 'ivan', '1', 0, 0, 1000, 'f1', 'scheduled', 1),
                   ('a', 2, 'petr', '2', 1, 0, 1600, 'f2', 'scheduled', 1);",
            )
            .unwrap();
        let via = super::super::Via::Line;
        // the caller heard episode 1: over, nothing changes
        assert_eq!(
            s.ack("a", Some(1), "olga", via, 1200).unwrap(),
            Some(Change::Already {
                state: AlertState::Resolved,
                by: None
            })
        );
        assert_eq!(s.show("a").unwrap().unwrap().state, AlertState::Firing);
        let ivan = s.show("a").unwrap().unwrap().calls.unwrap()[0].id;
        assert_eq!(
            s.record_outcome(ivan, Outcome::NoAnswer, 1030).unwrap(),
            Recorded::Done { unacked: None }
        );
        assert_eq!(
            s.ack("a", Some(2), "olga", via, 1300).unwrap(),
            Some(Change::Done { cancelled: 1 })
        );
        let v = s.show("a").unwrap().unwrap();
        assert_eq!((v.acked_at, v.acked_via), (Some(1300), Some(via)));
        assert_eq!(s.counts().unwrap().ack_delays, vec![300]);
        s.resolve("a", 2000).unwrap();
        assert_eq!(s.show("a").unwrap().unwrap().resolved_at, Some(2000));
    }
}
