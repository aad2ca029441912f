//! The few operations every entry point (command line, AGI, web receiver)
//! calls: raise, acknowledge, resolve, record an outcome. They tie the
//! config, the store, the speech cache and the spool together; none of the
//! callers talks SQL or builds call files itself.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use super::config::AlertsConfig;
use super::store::{CallRow, Change, NewAlert, PhoneAck, PlannedCall, Raised, Store, StoreError};
use super::{plan, valid_id, AlertState, Outcome, MAX_TEXT};
use crate::callfile::{PublishError, Spool, SpoolError};
use crate::speech::{self, Phrase};

/// Most labels on an alert, and bytes in a label's key or value.
pub const MAX_LABELS: usize = 64;
pub const MAX_LABEL: usize = 256;

/// Why an operation failed.
#[derive(Debug)]
pub enum PagerError {
    /// Bad input (id, text, labels, an unknown chain): nothing written. The
    /// message starts with the field at fault and a colon.
    Invalid(String),
    /// No chain given and no route matches: nothing written.
    NoRoute(String),
    /// The database.
    Store(StoreError),
    /// A call file could not be published or removed (the raise is stored
    /// and is completed by the next command).
    Spool(String),
}

impl fmt::Display for PagerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PagerError::Invalid(m) | PagerError::NoRoute(m) | PagerError::Spool(m) => {
                f.write_str(m)
            }
            PagerError::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PagerError {}

impl From<StoreError> for PagerError {
    fn from(e: StoreError) -> Self {
        PagerError::Store(e)
    }
}

/// A raise as asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaiseRequest {
    pub id: String,
    pub text: String,
    pub chain: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// What a raise did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RaiseOutcome {
    /// A new episode: its calls are queued.
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

/// Config, store and spool, opened once per command or process.
pub struct Pager {
    pub cfg: AlertsConfig,
    pub store: Store,
    spool: Spool,
}

/// Checks a raise's input; the error names the field.
pub fn check_request(r: &RaiseRequest) -> Result<(), PagerError> {
    if !valid_id(&r.id) {
        return Err(PagerError::Invalid(format!(
            "id {:?}: use 1-64 ASCII letters, digits, '-', '_', '.'",
            crate::escape_bytes(r.id.as_bytes())
        )));
    }
    if r.text.trim().is_empty() {
        return Err(PagerError::Invalid("text: empty".into()));
    }
    if r.text.len() > MAX_TEXT {
        return Err(PagerError::Invalid(format!(
            "text: {} bytes, at most {MAX_TEXT}",
            r.text.len()
        )));
    }
    if r.labels.len() > MAX_LABELS {
        return Err(PagerError::Invalid(format!(
            "labels: {} of them, at most {MAX_LABELS}",
            r.labels.len()
        )));
    }
    for (k, v) in &r.labels {
        if k.is_empty() || k.len() > MAX_LABEL || v.len() > MAX_LABEL {
            return Err(PagerError::Invalid(format!(
                "labels: {:?}: a key of 1-{MAX_LABEL} bytes and a value of at most {MAX_LABEL}",
                crate::escape_bytes(&k.as_bytes()[..k.len().min(40)])
            )));
        }
    }
    Ok(())
}

/// Unix seconds as a `SystemTime`.
pub fn at_time(secs: i64) -> std::time::SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH
    }
}

impl Pager {
    /// Opens the store under `cfg.state_dir` and the spool.
    pub fn open(cfg: AlertsConfig) -> Result<Pager, PagerError> {
        let store = Store::open(&cfg.state_dir)?;
        let spool = Spool::new(&cfg.spool_dir);
        Ok(Pager { cfg, store, spool })
    }

    /// Completes raises that were cut short (killed after storing the plan,
    /// before every call file was published): publishes what is missing.
    /// Returns how many episodes were completed.
    pub fn complete_pending(&mut self) -> Result<usize, PagerError> {
        let pending = self.store.unpublished()?;
        let n = pending.len();
        for (id, episode, calls) in pending {
            self.publish(&id, episode, &calls)?;
            self.store.mark_published(&id, episode)?;
        }
        Ok(n)
    }

    fn publish(&self, id: &str, episode: u32, calls: &[CallRow]) -> Result<(), PagerError> {
        for c in calls {
            let cf = self.cfg.call_file(&c.number, id, episode, c.id);
            match self.spool.publish_call(&c.file, &cf, at_time(c.at)) {
                Ok(_) | Err(PublishError::AlreadyPending(_)) => {}
                Err(e) => return Err(PagerError::Spool(e.to_string())),
            }
        }
        Ok(())
    }

    /// Removes the call files of cancelled calls (already gone is fine).
    pub fn remove_files(&self, files: &[String]) -> Result<(), PagerError> {
        for f in files {
            match self.spool.cancel(f) {
                Ok(_) | Err(SpoolError::NotFound(_)) => {}
                Err(e) => return Err(PagerError::Spool(e.to_string())),
            }
        }
        Ok(())
    }

    /// Renders the message (and the AGI's phrases) for every language the
    /// chain's contacts speak. A failure never stops the raise: the call
    /// then plays the fallback prompt; the first error is returned.
    fn render(&self, chain: &str, text: &str) -> (BTreeMap<String, String>, Option<String>) {
        let mut langs: Vec<String> = self
            .cfg
            .chains
            .get(chain)
            .map(|c| {
                c.steps
                    .iter()
                    .flat_map(|s| s.contacts.iter())
                    .map(|c| self.cfg.language_of(c))
                    .collect()
            })
            .unwrap_or_default();
        langs.sort();
        langs.dedup();
        let sp = &self.cfg.speech;
        let dir = &self.cfg.sounds_dir;
        let mut sounds = BTreeMap::new();
        let mut error = None;
        for lang in langs {
            let voice = speech::voice(sp, &lang);
            let msg = speech::message(sp, &lang, text, self.cfg.ack_digit);
            match speech::render(sp, dir, &voice, &msg) {
                Ok(p) => {
                    sounds.insert(lang.clone(), p.to_string_lossy().into_owned());
                }
                Err(e) => {
                    error.get_or_insert(format!("speech ({lang}): {e}"));
                    continue;
                }
            }
            for ph in [Phrase::Acked, Phrase::Stale] {
                let _ = speech::render(sp, dir, &voice, speech::phrase(&lang, ph));
            }
        }
        (sounds, error)
    }

    /// Raises an alert: a new episode whose calls are all queued at once,
    /// or (firing or acked already) a new text only.
    pub fn raise(&mut self, r: &RaiseRequest) -> Result<RaiseOutcome, PagerError> {
        check_request(r)?;
        let chain_name = self
            .cfg
            .choose_chain(r.chain.as_deref(), &r.labels)
            .map_err(|e| {
                if r.chain.is_some() {
                    PagerError::Invalid(format!("chain: {e}"))
                } else {
                    PagerError::NoRoute(e)
                }
            })?;
        let chain = self.cfg.chains[&chain_name].clone();
        let (sounds, speech_error) = self.render(&chain_name, &r.text);
        let planned: Vec<PlannedCall> = plan(&chain)
            .into_iter()
            .map(|p| PlannedCall {
                number: self.cfg.contacts[&p.contact].number.clone(),
                plan: p,
            })
            .collect();
        let new = NewAlert {
            id: &r.id,
            text: &r.text,
            labels: &r.labels,
            chain: &chain_name,
            sounds: &sounds,
            speech_error: speech_error.as_deref(),
        };
        match self.store.raise(&new, &planned)? {
            Raised::Updated {
                episode,
                state,
                changed,
            } => Ok(RaiseOutcome::Updated {
                episode,
                state,
                changed,
            }),
            Raised::New { episode, calls } => {
                self.publish(&r.id, episode, &calls)?;
                self.store.mark_published(&r.id, episode)?;
                Ok(RaiseOutcome::Raised {
                    episode,
                    calls,
                    speech_error,
                })
            }
        }
    }

    /// Acknowledges from outside a call; removes the calls still pending.
    /// `None` for an unknown id.
    pub fn ack(&mut self, id: &str, by: &str) -> Result<Option<Change>, PagerError> {
        let c = self.store.ack(id, by)?;
        if let Some(Change::Done { files }) = &c {
            self.remove_files(files)?;
        }
        Ok(c)
    }

    /// Resolves; removes the calls still pending. `None` for an unknown id.
    pub fn resolve(&mut self, id: &str) -> Result<Option<Change>, PagerError> {
        let c = self.store.resolve(id)?;
        if let Some(Change::Done { files }) = &c {
            self.remove_files(files)?;
        }
        Ok(c)
    }

    /// The ack digit pressed on call `call_id`.
    pub fn ack_by_call(&mut self, call_id: i64) -> Result<Option<PhoneAck>, PagerError> {
        let r = self.store.ack_by_call(call_id)?;
        if let Some(PhoneAck::Won { files, .. }) = &r {
            self.remove_files(files)?;
        }
        Ok(r)
    }

    /// Records a call's outcome; `Some(alert id)` when the alert just
    /// became unacknowledged (its chain ran out).
    pub fn record_outcome(
        &mut self,
        call_id: i64,
        outcome: Outcome,
    ) -> Result<Option<String>, PagerError> {
        Ok(self.store.record_outcome(call_id, outcome)?)
    }
}
