//! The pager's door for the alert line (`AGI(alert,line)`): the alerts a
//! caller hears, the wrong PINs and lockouts, and the phrases and names
//! rendered ahead so that nothing is rendered during a call.

use std::time::Instant;

use super::{Pager, PagerError};
use crate::alert::AlertState;
use crate::speech::{self, Phrase};

/// What the line says: the open alerts nobody acknowledged (firing, or
/// run out unacknowledged), newest first, and the acknowledged ones, as
/// (id, episode): each is read afresh when it is said.
#[derive(Debug, Clone, Default)]
pub struct LineAlerts {
    pub firing: Vec<(String, u32)>,
    pub acked: Vec<(String, u32)>,
}

/// What [`Pager::prepare`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Prepared {
    /// The languages prepared.
    pub languages: Vec<String>,
    /// Sounds rendered now, and found rendered already.
    pub rendered: usize,
    pub cached: usize,
    /// What could not be rendered (`speech (en): ...`), at most one per
    /// language.
    pub errors: Vec<String>,
}

impl Pager {
    /// The alerts for the line, newest first.
    pub fn line_alerts(&self) -> Result<LineAlerts, PagerError> {
        let mut out = LineAlerts::default();
        for (id, episode, state) in self.read(|s| s.open_alerts())? {
            match state {
                AlertState::Firing | AlertState::Unacknowledged => out.firing.push((id, episode)),
                AlertState::Acked => out.acked.push((id, episode)),
                AlertState::Resolved => {}
            }
        }
        Ok(out)
    }

    /// Until when the alert line refuses `number` (ten wrong PINs within
    /// an hour lock it for an hour); `None`: not locked at `now`.
    pub fn line_locked(&self, number: &str, now: i64) -> Result<Option<i64>, PagerError> {
        let f = self.read(|s| s.pin_failures(number, now - 2 * crate::line::LOCK_WINDOW))?;
        Ok(crate::line::locked_until(&f, now))
    }

    /// Records a wrong PIN from `number` at `now`; returns until when the
    /// number is locked now, if it is.
    pub fn line_pin_failed(&self, number: &str, now: i64) -> Result<Option<i64>, PagerError> {
        self.write(|s| s.record_pin_failure(number, now, now - 2 * crate::line::LOCK_WINDOW))?;
        self.line_locked(number, now)
    }

    /// A contact's or schedule's name in `lang` when rendered ahead.
    pub fn name_sound(&self, lang: &str, name: &str) -> Option<String> {
        self.text_sound(lang, &speech::spoken_name(name))
    }

    /// The line's menu for its keys in `lang` when rendered ahead.
    pub fn menu_sound(&self, lang: &str) -> Option<String> {
        let keys = crate::line::Keys::of(&self.config());
        self.text_sound(lang, &speech::menu(lang, keys.all()))
    }

    /// Everything the phone conversations say besides the messages,
    /// rendered into the cache for every language a contact speaks (and
    /// the default one): the phrases, the line's menu, every contact's
    /// and schedule's name. What is cached already costs a `stat`. Speech
    /// gets until `deadline`; what fails is reported, never fatal.
    pub fn prepare(&self, deadline: Option<Instant>) -> Prepared {
        let cfg = self.config();
        let mut langs: Vec<String> = cfg.contacts.keys().map(|c| cfg.language_of(c)).collect();
        langs.push(cfg.speech.language.clone());
        langs.sort();
        langs.dedup();
        let keys = crate::line::Keys::of(&cfg);
        let mut out = Prepared::default();
        if cfg.speech.engine == "none" {
            // stock prompts by choice: nothing to render
            out.languages = langs;
            return out;
        }
        for lang in &langs {
            let voice = speech::voice(&cfg.speech, lang);
            let mut texts: Vec<String> = Phrase::ALL
                .iter()
                .map(|&p| speech::phrase(lang, p).to_string())
                .collect();
            texts.push(speech::menu(lang, keys.all()));
            texts.extend(cfg.contacts.keys().map(|n| speech::spoken_name(n)));
            texts.extend(cfg.schedules.keys().map(|n| speech::spoken_name(n)));
            texts.sort();
            texts.dedup();
            let mut error = None;
            for t in &texts {
                let was = speech::cache_path(&cfg.speech, &cfg.sounds_dir, &voice, t).is_file();
                match self.render_text(&cfg, &voice, t, deadline) {
                    Ok(_) if was => out.cached += 1,
                    Ok(_) => out.rendered += 1,
                    Err(e) => {
                        error.get_or_insert(format!(
                            "speech ({lang}): {:?}: {}",
                            t,
                            crate::error_chain(&e)
                        ));
                    }
                }
            }
            out.errors.extend(error);
        }
        out.languages = langs;
        out
    }
}
