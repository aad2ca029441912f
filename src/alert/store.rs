//! The alert state in SQLite, `<state_dir>/alerts.db`: WAL, a busy timeout,
//! a schema version with migrations; every change one `BEGIN IMMEDIATE`
//! transaction, so of two acknowledgements at the same moment exactly one
//! wins, whichever process (AGI, command line, web receiver) makes it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{call_file_name, AlertState, Outcome, Planned};

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
];

/// A store failure, naming the database.
#[derive(Debug)]
pub struct StoreError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for StoreError {}

/// A planned call with its number, before it has an id.
#[derive(Debug, Clone)]
pub struct PlannedCall {
    pub plan: Planned,
    pub number: String,
}

/// A call as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: i64,
    pub contact: String,
    pub number: String,
    pub step: u32,
    pub round: u32,
    pub at: i64,
    pub file: String,
    pub outcome: Outcome,
}

/// One alert as `show` prints it (its current episode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertView {
    pub id: String,
    pub episode: u32,
    pub state: AlertState,
    pub text: String,
    pub chain: String,
    pub labels: BTreeMap<String, String>,
    pub raised_at: i64,
    pub acked_by: Option<String>,
    pub acked_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub sounds: BTreeMap<String, String>,
    pub speech_error: Option<String>,
    pub calls: Vec<CallRow>,
}

/// Totals of the whole database, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Current episodes by state.
    pub open_by_state: Vec<(String, i64)>,
    /// Episodes raised, acknowledged, resolved, run out unacknowledged.
    pub raised: i64,
    pub acked: i64,
    pub resolved: i64,
    pub unacknowledged: i64,
    /// Calls by outcome.
    pub calls: Vec<(String, i64)>,
    /// Seconds from raise to acknowledgement, one per acked episode.
    pub ack_delays: Vec<i64>,
}

impl AlertView {
    /// The JSON of `autodial alert show --json` (with calls) and `list
    /// --json` (without), also served by `GET /alerts/{id}` and `/alerts`.
    /// Times are RFC 3339 UTC, or null.
    pub fn to_json(&self, with_calls: bool) -> serde_json::Value {
        use serde_json::{json, Value};
        let time = |t: Option<i64>| {
            t.and_then(super::rfc3339)
                .map_or(Value::Null, Value::String)
        };
        let mut v = json!({
            "id": self.id, "episode": self.episode, "state": self.state.as_str(),
            "text": self.text, "chain": self.chain, "labels": self.labels,
            "raised_at": time(Some(self.raised_at)), "acked_by": self.acked_by,
            "acked_at": time(self.acked_at), "resolved_at": time(self.resolved_at),
            "speech_error": self.speech_error,
        });
        if with_calls {
            v["calls"] = self
                .calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "contact": c.contact, "number": c.number,
                           "step": c.step, "round": c.round, "at": time(Some(c.at)),
                           "file": c.file, "outcome": c.outcome.as_str()})
                })
                .collect();
        }
        v
    }
}

/// A new alert or episode.
#[derive(Debug, Clone)]
pub struct NewAlert<'a> {
    pub id: &'a str,
    pub text: &'a str,
    pub labels: &'a BTreeMap<String, String>,
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
    /// Done; the files of the calls cancelled, to remove.
    Done { files: Vec<String> },
    /// Nothing to do: the alert was already in this state.
    Already {
        state: AlertState,
        by: Option<String>,
    },
}

/// What an acknowledgement from a phone did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneAck {
    /// This call's key press won; the files of the calls cancelled.
    Won {
        alert_id: String,
        files: Vec<String>,
    },
    /// The alert was no longer firing (someone else was first).
    Stale { state: AlertState },
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

/// An open database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Opens (creating it and `dir` if needed) `<dir>/alerts.db`, in WAL
    /// mode, migrated to this binary's schema. A database newer than the
    /// binary is refused.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.join("alerts.db");
        let err = |message: String| StoreError {
            path: path.clone(),
            message,
        };
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create the directory: {e}")))?;
        let conn = Connection::open(&path).map_err(|e| err(format!("cannot open: {e}")))?;
        conn.busy_timeout(BUSY)
            .map_err(|e| err(format!("busy_timeout: {e}")))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| err(format!("journal_mode: {e}")))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(err(format!("journal_mode is {mode}, not wal")));
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| err(format!("pragmas: {e}")))?;
        let mut store = Store { conn, path };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, e: impl fmt::Display) -> StoreError {
        StoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |message: String| StoreError {
            path: path.clone(),
            message,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(format!("migration: {e}")))?;
        let run = || -> rusqlite::Result<Result<(), String>> {
            let v: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            let known = MIGRATIONS.len() as i64;
            if v > known {
                return Ok(Err(format!(
                    "schema version {v} is newer than this program's {known}; upgrade the program"
                )));
            }
            for m in &MIGRATIONS[v as usize..] {
                tx.execute_batch(m)?;
            }
            tx.pragma_update(None, "user_version", known)?;
            Ok(Ok(()))
        };
        match run() {
            Ok(Ok(())) => tx.commit().map_err(|e| err(format!("migration: {e}"))),
            Ok(Err(m)) => Err(err(m)),
            Err(e) => Err(err(format!("migration: {e}"))),
        }
    }

    fn immediate(&mut self) -> Result<rusqlite::Transaction<'_>, StoreError> {
        let path = self.path.clone();
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| StoreError {
                path,
                message: e.to_string(),
            })
    }

    /// Raises `a`: a new episode with `planned` calls (when the alert is
    /// new, resolved or unacknowledged), or only a new text (when it is
    /// firing or acked). One transaction; the calls are published by the
    /// caller, then [`Store::mark_published`].
    pub fn raise(&mut self, a: &NewAlert, planned: &[PlannedCall]) -> Result<Raised, StoreError> {
        let t = now();
        let labels = serde_json::to_string(a.labels).unwrap_or_else(|_| "{}".into());
        let sounds = serde_json::to_string(a.sounds).unwrap_or_else(|_| "{}".into());
        let path = self.path.clone();
        let tx = self.immediate()?;
        let r =
            (|| -> rusqlite::Result<Raised> {
                let cur: Option<(u32, String, String)> = tx
                    .query_row(
                        "SELECT e.episode, e.state, e.text FROM alerts a JOIN episodes e
                     ON e.alert_id = a.id AND e.episode = a.episode WHERE a.id = ?1",
                        [a.id],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                if let Some((ep, st, old_text)) = &cur {
                    let state = AlertState::parse(st).unwrap_or(AlertState::Firing);
                    if state.is_open() && *old_text == a.text {
                        return Ok(Raised::Updated {
                            episode: *ep,
                            state,
                            changed: false,
                        });
                    }
                    if state.is_open() {
                        tx.execute(
                            "UPDATE episodes SET text = ?1, sounds = ?2, speech_error = ?3
                         WHERE alert_id = ?4 AND episode = ?5",
                            params![a.text, sounds, a.speech_error, a.id, ep],
                        )?;
                        return Ok(Raised::Updated {
                            episode: *ep,
                            state,
                            changed: true,
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
                 sounds, speech_error) VALUES (?1, ?2, ?3, ?4, ?5, 'firing', ?6, ?7, ?8)",
                params![a.id, episode, a.text, labels, a.chain, t, sounds, a.speech_error],
            )?;
                let mut calls = Vec::new();
                for p in planned {
                    let file = call_file_name(a.id, episode, &p.plan);
                    let at = t + p.plan.offset as i64;
                    tx.execute(
                    "INSERT INTO calls (alert_id, episode, contact, number, step, round, at, file,
                     outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'scheduled')",
                    params![
                        a.id,
                        episode,
                        p.plan.contact,
                        p.number,
                        p.plan.step,
                        p.plan.round,
                        at,
                        file
                    ],
                )?;
                    calls.push(CallRow {
                        id: tx.last_insert_rowid(),
                        contact: p.plan.contact.clone(),
                        number: p.number.clone(),
                        step: p.plan.step,
                        round: p.plan.round,
                        at,
                        file,
                        outcome: Outcome::Scheduled,
                    });
                }
                Ok(Raised::New { episode, calls })
            })();
        match r {
            Ok(r) => {
                tx.commit().map_err(|e| StoreError {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                Ok(r)
            }
            Err(e) => Err(StoreError {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// Records that every call of the episode was published.
    pub fn mark_published(&mut self, id: &str, episode: u32) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE episodes SET published = 1 WHERE alert_id = ?1 AND episode = ?2",
                params![id, episode],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// Episodes whose raise was cut short (killed between storing the plan
    /// and publishing it), with the calls still to publish.
    pub fn unpublished(&self) -> Result<Vec<(String, u32, Vec<CallRow>)>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT alert_id, episode FROM episodes WHERE published = 0 AND state = 'firing'",
            )
            .map_err(|e| self.err(e))?;
        let eps: Vec<(String, u32)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (id, ep) in eps {
            let calls = self
                .calls(&id, ep)?
                .into_iter()
                .filter(|c| c.outcome == Outcome::Scheduled)
                .collect();
            out.push((id, ep, calls));
        }
        Ok(out)
    }

    fn calls(&self, id: &str, episode: u32) -> Result<Vec<CallRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, contact, number, step, round, at, file, outcome FROM calls
                 WHERE alert_id = ?1 AND episode = ?2 ORDER BY at, round, step, id",
            )
            .map_err(|e| self.err(e))?;
        st.query_map(params![id, episode], |r| {
            let o: String = r.get(7)?;
            Ok(CallRow {
                id: r.get(0)?,
                contact: r.get(1)?,
                number: r.get(2)?,
                step: r.get(3)?,
                round: r.get(4)?,
                at: r.get(5)?,
                file: r.get(6)?,
                outcome: Outcome::parse(&o).unwrap_or(Outcome::Failed),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| self.err(e))
    }

    /// Cancels the calls still scheduled of an episode (inside `tx`);
    /// returns their files.
    fn cancel_rest(
        tx: &rusqlite::Transaction,
        id: &str,
        episode: u32,
        t: i64,
    ) -> rusqlite::Result<Vec<String>> {
        let mut st = tx.prepare(
            "UPDATE calls SET outcome = 'cancelled', outcome_at = ?3
             WHERE alert_id = ?1 AND episode = ?2 AND outcome = 'scheduled' RETURNING file",
        )?;
        let files = st
            .query_map(params![id, episode, t], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(files)
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
            |r| {
                let s: String = r.get(1)?;
                Ok((
                    r.get(0)?,
                    AlertState::parse(&s).unwrap_or(AlertState::Firing),
                    r.get(2)?,
                ))
            },
        )
        .optional()
    }

    fn in_tx<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let e = |e: rusqlite::Error| StoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let tx = self.immediate()?;
        let v = f(&tx).map_err(e)?;
        tx.commit().map_err(|x| StoreError {
            path: path.clone(),
            message: x.to_string(),
        })?;
        Ok(v)
    }

    /// Acknowledges alert `id` (from the command line or the web): a firing
    /// or unacknowledged alert becomes acked; the calls still scheduled
    /// are cancelled. `None` for an unknown id.
    pub fn ack(&mut self, id: &str, by: &str) -> Result<Option<Change>, StoreError> {
        let t = now();
        self.in_tx(|tx| {
            let Some((ep, state, acked_by)) = Self::current(tx, id)? else {
                return Ok(None);
            };
            if !matches!(state, AlertState::Firing | AlertState::Unacknowledged) {
                return Ok(Some(Change::Already {
                    state,
                    by: acked_by,
                }));
            }
            tx.execute(
                "UPDATE episodes SET state = 'acked', acked_by = ?3, acked_at = ?4, ended_at = ?4
                 WHERE alert_id = ?1 AND episode = ?2",
                params![id, ep, by, t],
            )?;
            let files = Self::cancel_rest(tx, id, ep, t)?;
            Ok(Some(Change::Done { files }))
        })
    }

    /// Resolves alert `id`: the calls still scheduled are cancelled.
    /// `None` for an unknown id.
    pub fn resolve(&mut self, id: &str) -> Result<Option<Change>, StoreError> {
        let t = now();
        self.in_tx(|tx| {
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
            let files = Self::cancel_rest(tx, id, ep, t)?;
            Ok(Some(Change::Done { files }))
        })
    }

    /// A key press on call `call_id`: if its episode is still the current
    /// one and firing, it becomes acked by the call's contact and the other
    /// scheduled calls are cancelled; else the call was stale.
    pub fn ack_by_call(&mut self, call_id: i64) -> Result<Option<PhoneAck>, StoreError> {
        let t = now();
        self.in_tx(|tx| {
            let Some((id, ep, contact)) = tx
                .query_row(
                    "SELECT alert_id, episode, contact FROM calls WHERE id = ?1",
                    [call_id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, String>(2)?)),
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
                         ended_at = ?4 WHERE alert_id = ?1 AND episode = ?2",
                        params![id, ep, contact, t],
                    )?;
                    tx.execute(
                        "UPDATE calls SET outcome = 'answered_acked', outcome_at = ?2 WHERE id = ?1",
                        params![call_id, t],
                    )?;
                    let files = Self::cancel_rest(tx, &id, ep, t)?;
                    Ok(Some(PhoneAck::Won {
                        alert_id: id,
                        files,
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
                    Ok(Some(PhoneAck::Stale { state }))
                }
            }
        })
    }

    /// Records the outcome of call `call_id` (unless a final one is
    /// recorded already). When that was the last planned call of a firing
    /// episode, the episode becomes unacknowledged: returns its alert id.
    pub fn record_outcome(
        &mut self,
        call_id: i64,
        outcome: Outcome,
    ) -> Result<Option<String>, StoreError> {
        let t = now();
        self.in_tx(|tx| {
            let Some((id, ep)) = tx
                .query_row(
                    "SELECT alert_id, episode FROM calls WHERE id = ?1",
                    [call_id],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)),
                )
                .optional()?
            else {
                return Ok(None);
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
                    "UPDATE episodes SET state = 'unacknowledged', ended_at = ?3
                     WHERE alert_id = ?1 AND episode = ?2 AND state = 'firing'",
                    params![id, ep, t],
                )?;
                if n == 1 {
                    return Ok(Some(id));
                }
            }
            Ok(None)
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
                    let o: String = r.get(4)?;
                    let s: String = r.get(5)?;
                    let sounds: String = r.get(7)?;
                    let ep: u32 = r.get(1)?;
                    let cur: u32 = r.get(8)?;
                    Ok(CallInfo {
                        alert_id: r.get(0)?,
                        episode: ep,
                        contact: r.get(2)?,
                        number: r.get(3)?,
                        outcome: Outcome::parse(&o).unwrap_or(Outcome::Failed),
                        state: AlertState::parse(&s).unwrap_or(AlertState::Firing),
                        current: ep == cur,
                        text: r.get(6)?,
                        sounds: serde_json::from_str(&sounds).unwrap_or_default(),
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Checks the database can be written now (a write lock taken and
    /// given back).
    pub fn check_writable(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self.immediate()?;
        tx.rollback().map_err(|e| StoreError {
            path,
            message: e.to_string(),
        })
    }

    /// Totals for metrics, read at scrape time (several processes write).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let q = |sql: &str| -> Result<Vec<(String, i64)>, StoreError> {
            let mut st = self.conn.prepare(sql).map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(|e| self.err(e));
            rows
        };
        let one = |sql: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(sql, [], |r| r.get(0))
                .map_err(|e| self.err(e))
        };
        let mut st = self
            .conn
            .prepare("SELECT acked_at - raised_at FROM episodes WHERE acked_at IS NOT NULL")
            .map_err(|e| self.err(e))?;
        let ack_delays = st
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        Ok(Counts {
            open_by_state: q("SELECT e.state, COUNT(*) FROM alerts a JOIN episodes e
                 ON e.alert_id = a.id AND e.episode = a.episode GROUP BY e.state")?,
            raised: one("SELECT COUNT(*) FROM episodes")?,
            acked: one("SELECT COUNT(*) FROM episodes WHERE acked_at IS NOT NULL")?,
            resolved: one("SELECT COUNT(*) FROM episodes WHERE resolved_at IS NOT NULL")?,
            unacknowledged: one(
                "SELECT COUNT(*) FROM episodes WHERE acked_at IS NULL AND ended_at IS NOT NULL
                 AND (resolved_at IS NULL OR ended_at < resolved_at)",
            )?,
            calls: q("SELECT outcome, COUNT(*) FROM calls GROUP BY outcome")?,
            ack_delays,
        })
    }

    /// Alert `id` (its current episode) with its calls.
    pub fn show(&self, id: &str) -> Result<Option<AlertView>, StoreError> {
        let v = self.views(Some(id), true)?;
        Ok(v.into_iter().next())
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
        let mut st = self
            .conn
            .prepare(
                "SELECT e.alert_id, e.episode, e.state, e.text, e.chain, e.labels, e.raised_at,
                 e.acked_by, e.acked_at, e.resolved_at, e.sounds, e.speech_error
                 FROM alerts a JOIN episodes e ON e.alert_id = a.id AND e.episode = a.episode
                 WHERE ?1 IS NULL OR a.id = ?1 ORDER BY e.raised_at DESC, a.id",
            )
            .map_err(|e| self.err(e))?;
        let mut out: Vec<AlertView> = st
            .query_map([id], |r| {
                let s: String = r.get(2)?;
                let labels: String = r.get(5)?;
                let sounds: String = r.get(10)?;
                Ok(AlertView {
                    id: r.get(0)?,
                    episode: r.get(1)?,
                    state: AlertState::parse(&s).unwrap_or(AlertState::Firing),
                    text: r.get(3)?,
                    chain: r.get(4)?,
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                    raised_at: r.get(6)?,
                    acked_by: r.get(7)?,
                    acked_at: r.get(8)?,
                    resolved_at: r.get(9)?,
                    sounds: serde_json::from_str(&sounds).unwrap_or_default(),
                    speech_error: r.get(11)?,
                    calls: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        if with_calls {
            for a in &mut out {
                a.calls = self.calls(&a.id, a.episode)?;
            }
        }
        Ok(out)
    }
}
