//! `AGI(alert,line)`: the alert line. A contact calls in, is known by
//! caller ID (and their PIN), hears what is firing and acknowledges it.
//! The decisions (who is calling, the PIN, the lockout, the walk through
//! the alerts, who was called) are `agi_callback::line`'s; the state
//! changes go through the pager's door; this holds the conversation.
//! Everything it plays was rendered ahead (`autodial alert prepare`, the
//! receiver's start); what is missing falls back to Asterisk's own
//! recordings or is spelled, never rendered during the call.

use std::io::{self, Write};

use agi_callback::agi::{Command, Reply};
use agi_callback::alert::config::{default_path, AlertsConfig};
use agi_callback::alert::pager::{rendered_sound, unix_now, Pager};
use agi_callback::alert::store::Change;
use agi_callback::alert::{AlertState, Via};
use agi_callback::line::{self, Caller, Item, Keys, Then, Walk};
use agi_callback::speech::Phrase;
use agi_callback::{error_chain, escape_bytes};
use log::Level;

use super::{key_of, log_line, Agi};

/// One thing to say.
enum Say {
    /// A sound file (path without the extension, or a stock prompt).
    File(String),
    /// A number, in Asterisk's own recordings.
    Number(i64),
    /// A name nobody rendered: spelled.
    Spell(String),
}

/// The call as it went, for its one log line.
struct Record {
    from: String,
    contact: Option<String>,
    heard: Vec<String>,
    acked: Vec<String>,
    firing: usize,
}

impl Record {
    fn log(&self, level: Level, result: &str, why: &str) {
        log_line(
            level,
            &format!(
                "line call from {}{}: {result}{}{}",
                self.from,
                self.contact
                    .as_ref()
                    .map_or(String::new(), |c| format!(" ({c})")),
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                },
                if result == "OK" {
                    format!(
                        "; heard {} of {} firing; acked [{}]",
                        self.heard.len(),
                        self.firing,
                        self.acked.join(", ")
                    )
                } else {
                    String::new()
                }
            ),
        );
    }
}

struct Talk<'a, R: io::BufRead, W: Write> {
    agi: &'a mut Agi<R, W>,
    pager: &'a Pager,
    lang: String,
    keys: Keys,
}

impl<R: io::BufRead, W: Write> Talk<'_, R, W> {
    fn phrase(&self, p: Phrase, stock: &str) -> Say {
        Say::File(self.pager.phrase_sound(&self.lang, p, stock))
    }

    fn name(&self, name: &str) -> Say {
        match self.pager.name_sound(&self.lang, name) {
            Some(f) => Say::File(f),
            None => Say::Spell(name.to_string()),
        }
    }

    /// Says `items` in turn; any line key ends it: `Some(Some(k))`.
    /// `Some(None)`: said to the end; `None`: hung up.
    fn say(&mut self, items: &[Say], keyed: bool) -> Option<Option<char>> {
        let esc = if keyed {
            self.keys.escape()
        } else {
            String::new()
        };
        for it in items {
            let cmd = match it {
                Say::File(f) if f.is_empty() => continue,
                Say::File(f) => Command::stream_file(f.as_bytes(), esc.as_bytes()),
                Say::Number(n) => Command::say_number(*n, esc.as_bytes()),
                Say::Spell(s) => Command::say_alpha(s.as_bytes(), esc.as_bytes()),
            };
            let Ok(cmd) = cmd else { continue };
            if let Some(k) = self.agi.keyed(cmd, &esc)? {
                return Some(Some(k));
            }
        }
        Some(None)
    }

    /// Waits up to `seconds` for a line key (others are ignored):
    /// `Some(None)` silence, `None` hung up.
    fn wait_key(&mut self, seconds: u32) -> Option<Option<char>> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds.into());
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Some(None);
            }
            let reply = self
                .agi
                .send(Command::wait_for_digit(left.as_millis() as i64))?;
            if !matches!(reply, Reply::Success { .. }) {
                return None;
            }
            match reply.result_code() {
                Some(0) | None => return Some(None),
                Some(-1) => return None,
                Some(c) => {
                    if let Some(k) = key_of(c).filter(|k| self.keys.key(*k).is_some()) {
                        return Some(Some(k));
                    }
                }
            }
        }
    }

    /// Who is on call now, schedule by schedule.
    fn on_call(&mut self) -> Option<()> {
        let now = self.pager.on_call_now(None, unix_now());
        let mut items = vec![self.phrase(Phrase::OnCall, "")];
        match now {
            Ok(v) => {
                for s in v {
                    items.push(self.name(&s.schedule));
                    if s.contacts.is_empty() {
                        items.push(self.phrase(Phrase::Nobody, ""));
                    }
                    for c in &s.contacts {
                        items.push(self.name(c));
                    }
                }
            }
            Err(e) => {
                log_line(Level::Error, &format!("line: on call: {}", error_chain(&e)));
                items.push(Say::File("tt-somethingwrong".into()));
            }
        }
        self.say(&items, false).map(|_| ())
    }

    /// The alert, read now (someone may have acked it since the list was
    /// read): its message, who acknowledged, who was called. An alert
    /// raised again since (a new episode) is only said to be resolved.
    fn alert(&mut self, (id, episode): &(String, u32)) -> Option<Option<char>> {
        let view = match self.pager.show(id) {
            Ok(v) => v.filter(|v| v.episode == *episode),
            Err(e) => {
                log_line(
                    Level::Error,
                    &format!("line: alert {id}: {}", error_chain(&e)),
                );
                None
            }
        };
        let mut items = vec![];
        match &view {
            None => items.push(self.phrase(Phrase::Resolved, "")),
            Some(v) => {
                items.push(Say::File(self.pager.alert_sound(&v.sounds, &self.lang)));
                match (v.state, v.acked_by.as_deref()) {
                    (AlertState::Acked, by) => {
                        items.push(self.phrase(Phrase::AckedBy, ""));
                        items.push(self.name(by.unwrap_or("")));
                    }
                    (AlertState::Resolved, _) => items.push(self.phrase(Phrase::Resolved, "")),
                    _ => items.push(self.phrase(Phrase::NotAcked, "")),
                }
                let called = line::called(v.calls.as_deref().unwrap_or_default(), unix_now());
                if called.is_empty() {
                    items.push(self.phrase(Phrase::NobodyCalled, ""));
                } else {
                    items.push(self.phrase(Phrase::Called, ""));
                    for c in &called {
                        items.push(self.name(c));
                    }
                }
            }
        }
        match self.say(&items, true)? {
            Some(k) => Some(Some(k)),
            None => self.wait_key(line::SILENCE_SECONDS),
        }
    }

    /// The ack key on alert `id`: of the episode heard, by this contact.
    fn ack(&mut self, (id, episode): &(String, u32), by: &str, rec: &mut Record) -> Option<()> {
        let items = match self.pager.ack_episode(id, Some(*episode), by, Via::Line) {
            Ok(Some(Change::Done { cancelled })) => {
                log_line(
                    Level::Info,
                    &format!(
                        "alert {id} acked by {by} on the line; {cancelled} pending call(s) removed"
                    ),
                );
                rec.acked.push(id.clone());
                vec![self.phrase(Phrase::Acked, "auth-thankyou")]
            }
            Ok(Some(Change::Already {
                state: AlertState::Acked,
                by: Some(who),
            })) => vec![self.phrase(Phrase::AlreadyAcked, ""), self.name(&who)],
            Ok(_) => vec![self.phrase(Phrase::Resolved, "")],
            Err(e) => {
                log_line(
                    Level::Error,
                    &format!("line: ack of {id} by {by}: {}", error_chain(&e)),
                );
                vec![Say::File("tt-somethingwrong".into())]
            }
        };
        self.say(&items, false).map(|_| ())
    }
}

/// `AGI(alert,line)`. Sets LINE_STATUS: DENIED (unknown number, no PIN
/// where one is needed, three wrong tries), LOCKED, OK or ERROR.
pub(super) fn line<R: io::BufRead, W: Write>(agi: &mut Agi<R, W>, callerid: &[u8]) -> i32 {
    let mut rec = Record {
        from: if callerid.is_empty() {
            "unknown".into()
        } else {
            escape_bytes(callerid)
        },
        contact: None,
        heard: vec![],
        acked: vec![],
        firing: 0,
    };
    let status = |agi: &mut Agi<R, W>, word: &str, say: &str| {
        agi.status_word("LINE_STATUS", word, &format!("line: {say}"))
    };
    let cfg = match AlertsConfig::load(&default_path()) {
        Ok(c) => c,
        Err(e) => {
            let m = e.to_string();
            rec.log(Level::Error, "ERROR", &m);
            agi.play("tt-somethingwrong", None);
            status(agi, "ERROR", &m);
            return 1;
        }
    };
    let raw = String::from_utf8_lossy(callerid).into_owned();
    let number = line::normalise(&cfg, &raw);
    let default_lang = cfg.speech.language.clone();
    let (contact, with_pin) = match line::identify(&cfg, &raw) {
        Caller::Known { contact, pin } => (contact, pin),
        other => {
            let why = match &other {
                Caller::Refused { contact } => {
                    rec.contact = Some(contact.clone());
                    "no PIN, and line.trust_caller_id is false"
                }
                _ => "not registered",
            };
            rec.log(Level::Warn, "DENIED", why);
            // the same words either way: a stranger learns nothing (and
            // costs no database)
            let text = agi_callback::speech::phrase(&default_lang, Phrase::NotRegistered);
            let f =
                rendered_sound(&cfg, &default_lang, text).unwrap_or_else(|| "ss-noservice".into());
            agi.play(&f, None);
            status(agi, "DENIED", why);
            return 0;
        }
    };
    rec.contact = Some(contact.clone());
    let lang = cfg.language_of(&contact);
    let pin_len = cfg
        .contacts
        .get(&contact)
        .and_then(|c| c.pin.as_ref())
        .map_or(8, |p| p.len() as u32);
    let keys = Keys::of(&cfg);
    let number = number.unwrap_or_default();
    let pager = match Pager::open(cfg) {
        Ok(p) => p,
        Err(e) => {
            let m = error_chain(&e);
            rec.log(Level::Error, "ERROR", &m);
            agi.play("tt-somethingwrong", None);
            status(agi, "ERROR", &m);
            return 1;
        }
    };
    let mut talk = Talk {
        agi,
        pager: &pager,
        lang,
        keys,
    };
    if with_pin {
        match pin(&mut talk, &contact, &number, pin_len) {
            Ok(()) => {}
            Err((word, why)) => {
                let level = if word == "ERROR" {
                    Level::Error
                } else {
                    Level::Warn
                };
                rec.log(level, word, &why);
                status(talk.agi, word, &why);
                return i32::from(word == "ERROR");
            }
        }
    }
    let alerts = match pager.line_alerts() {
        Ok(a) => a,
        Err(e) => {
            let m = error_chain(&e);
            rec.log(Level::Error, "ERROR", &m);
            talk.agi.play("tt-somethingwrong", None);
            status(talk.agi, "ERROR", &m);
            return 1;
        }
    };
    rec.firing = alerts.firing.len();
    walk(&mut talk, &alerts, &contact, &mut rec);
    let gone = talk.agi.gone;
    rec.log(Level::Info, "OK", if gone { "hung up" } else { "" });
    status(
        talk.agi,
        "OK",
        &format!("{contact}: {} acked", rec.acked.len()),
    );
    0
}

/// Asks the PIN (three tries of five seconds). `Err((status, why))`.
fn pin<R: io::BufRead, W: Write>(
    talk: &mut Talk<'_, R, W>,
    contact: &str,
    number: &str,
    len: u32,
) -> Result<(), (&'static str, String)> {
    let locked = |talk: &mut Talk<'_, R, W>, until: i64| {
        let f = talk.phrase(Phrase::Locked, "vm-goodbye");
        let _ = talk.say(&[f], false);
        (
            "LOCKED",
            format!(
                "ten wrong PINs within an hour: locked until {}",
                agi_callback::alert::rfc3339(until).unwrap_or_else(|| until.to_string())
            ),
        )
    };
    match talk.pager.line_locked(number, unix_now()) {
        Ok(Some(until)) => return Err(locked(talk, until)),
        Ok(None) => {}
        Err(e) => {
            let _ = talk.say(&[Say::File("tt-somethingwrong".into())], false);
            return Err(("ERROR", error_chain(&e)));
        }
    }
    let prompt = talk
        .pager
        .phrase_sound(&talk.lang, Phrase::EnterPin, "agent-pass");
    for attempt in 0..line::PIN_TRIES {
        if attempt > 0 {
            let wrong = talk.phrase(Phrase::WrongPin, "auth-incorrect");
            if talk.say(&[wrong], false).is_none() {
                return Err(("DENIED", "hung up during the PIN".into()));
            }
        }
        let cmd = Command::get_data(prompt.as_bytes(), line::PIN_SECONDS * 1000, len)
            .map_err(|e| ("ERROR", e.to_string()))?;
        let entered = match talk.agi.send(cmd) {
            Some(Reply::Success { result, .. }) if result != b"-1" => {
                String::from_utf8_lossy(&result).into_owned()
            }
            _ => return Err(("DENIED", "hung up during the PIN".into())),
        };
        if line::pin_ok(&talk.pager.config(), contact, &entered) {
            return Ok(());
        }
        if entered.is_empty() {
            continue; // nothing typed: a try, not a wrong PIN
        }
        match talk.pager.line_pin_failed(number, unix_now()) {
            Ok(Some(until)) => return Err(locked(talk, until)),
            Ok(None) => {}
            Err(e) => {
                log_line(
                    Level::Error,
                    &format!("line: wrong PIN not recorded: {}", error_chain(&e)),
                );
            }
        }
    }
    let items = [
        talk.phrase(Phrase::WrongPin, "auth-incorrect"),
        Say::File("vm-goodbye".into()),
    ];
    let _ = talk.say(&items, false);
    Err((
        "DENIED",
        format!("no right PIN in {} tries", line::PIN_TRIES),
    ))
}

/// The count, the menu, then the alerts one by one.
fn walk<R: io::BufRead, W: Write>(
    talk: &mut Talk<'_, R, W>,
    alerts: &agi_callback::alert::pager::LineAlerts,
    contact: &str,
    rec: &mut Record,
) -> Option<()> {
    let mut intro = if alerts.firing.is_empty() {
        vec![talk.phrase(Phrase::NoneFiring, "vm-nomore")]
    } else {
        vec![
            talk.phrase(Phrase::Firing, "queue-thereare"),
            Say::Number(alerts.firing.len() as i64),
        ]
    };
    if let Some(m) = talk.pager.menu_sound(&talk.lang) {
        intro.push(Say::File(m));
    }
    let mut w = Walk::new(alerts.firing.len(), alerts.acked.len());
    // a key during the introduction: on call and acknowledged-too do
    // their part; any other starts the alerts
    let mut key = talk.say(&intro, true)?;
    if key.is_none() && alerts.firing.is_empty() {
        key = talk.wait_key(line::SILENCE_SECONDS)?;
    }
    if let Some(k @ (line::Key::OnCall | line::Key::AckedToo)) = key.and_then(|k| talk.keys.key(k))
    {
        then(talk, w.on(Some(k)), alerts, contact, rec)?;
    }
    while let Some(item) = w.current() {
        let a = pick(alerts, item);
        if !rec.heard.contains(&a.0) && matches!(item, Item::Firing(_)) {
            rec.heard.push(a.0.clone());
        }
        let key = talk.alert(a)?;
        let t = w.on(key.and_then(|k| talk.keys.key(k)));
        then(talk, t, alerts, contact, rec)?;
    }
    let end = talk.phrase(Phrase::End, "vm-goodbye");
    talk.say(&[end], false).map(|_| ())
}

fn pick(alerts: &agi_callback::alert::pager::LineAlerts, item: Item) -> &(String, u32) {
    match item {
        Item::Firing(i) => &alerts.firing[i],
        Item::Acked(i) => &alerts.acked[i],
    }
}

/// Does what the walk decided.
fn then<R: io::BufRead, W: Write>(
    talk: &mut Talk<'_, R, W>,
    t: Then,
    alerts: &agi_callback::alert::pager::LineAlerts,
    contact: &str,
    rec: &mut Record,
) -> Option<()> {
    match t {
        Then::Ack(item) => talk.ack(pick(alerts, item), contact, rec),
        Then::OnCall => talk.on_call(),
        Then::AckedAdded(n) => {
            let p = talk.phrase(Phrase::AckedAlerts, "");
            talk.say(&[p, Say::Number(n as i64)], false).map(|_| ())
        }
        Then::Go => Some(()),
    }
}
