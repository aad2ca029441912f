//! `alert`: the AGI program of phone alerts, run by the `autodial-alert`
//! dialplan context on every alert call.
//!
//! - Answered (`AGI(alert,${ALERT_CALL})`): if the alert is no longer
//!   firing, says so and records `stale`. Otherwise plays the message with
//!   the ack digit as escape, waits a few seconds for it, up to three
//!   times. On the digit: marks the alert acked by this contact (one
//!   transaction; of two people pressing at once exactly one wins), removes
//!   every other pending call file of the alert, plays a confirmation.
//!   Without it: records `answered_no_ack`.
//! - Failed (`AGI(alert,${ALERT_CALL},failed,${REASON})`): records
//!   `no_answer` (3), `busy` (5) or `failed` (the rest).
//!
//! Sets `ALERT_STATUS`: `ACKED`, `NOACK`, `STALE`, `RECORDED` (failed
//! attempt) or `ERROR`. What is known is recorded before anything is said,
//! so a caller hanging up (SIGHUP, 511, EOF) loses nothing.
//!
//! `no_main`, like `callback`: Asterisk starts it once per call, and the C
//! `main` skips the Rust runtime's set-up (stack guard probing through
//! /proc/self/maps, the stack-overflow handler) it does not need.
#![no_main]

use std::io::{self, Write};

use agi_callback::agi::startup::{self, Start};
use agi_callback::agi::{Command, FdReader, Reply, Session, SessionError};
use agi_callback::alert::config::{default_path, AlertsConfig};
use agi_callback::alert::pager::Pager;
use agi_callback::alert::store::{PhoneAck, Recorded};
use agi_callback::alert::Outcome;
use agi_callback::speech::Phrase;
use agi_callback::{error_chain, escape_bytes, logging, paths};
use log::{Level, LevelFilter};

mod line;

/// Rounds of message + wait.
const ROUNDS: usize = 3;
/// Milliseconds to wait for the digit after each message.
const WAIT_MS: i64 = 5000;

// SAFETY: the C entry point of a `no_main` program; nothing else defines
// `main`.
#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    if let Start::Exit(code) = startup::begin("alert", agi_callback::alert::AGI_HELP, &[]) {
        let _ = io::stdout().flush();
        return code;
    }
    logging::init_file(LevelFilter::Info);
    // The log is opened at once (never blocking); a log that cannot be
    // written never stops the call.
    let _ = logging::attach(&paths::log_dir().join("autodial-alert.log"));
    let code = run(FdReader::stdin(), io::stdout().lock());
    logging::flush();
    let _ = io::stdout().flush();
    code
}

/// One line to the log, the message escaped (it carries outside bytes).
fn log_line(level: Level, msg: &str) {
    log::log!(level, "{}", escape_bytes(msg.as_bytes()));
}

struct Agi<R: io::BufRead, W: Write> {
    s: Session<R, W>,
    /// The channel is gone (511, EOF, -1 from playback on a dead channel).
    gone: bool,
}

impl<R: io::BufRead, W: Write> Agi<R, W> {
    fn send(&mut self, cmd: Command) -> Option<Reply> {
        if self.gone && !is_dead_safe(&cmd) {
            return None;
        }
        match self.s.send(&cmd) {
            Ok(Reply::DeadChannel) => {
                self.gone = true;
                Some(Reply::DeadChannel)
            }
            Ok(r) => Some(r),
            Err(_) => {
                self.gone = true;
                None
            }
        }
    }

    fn status(&mut self, status: &str, say: &str) {
        self.status_word("ALERT_STATUS", status, say)
    }

    /// Sets `var` to `status` and says `say` in Asterisk's log.
    fn status_word(&mut self, var: &str, status: &str, say: &str) {
        if let Ok(c) = Command::set_variable(var.as_bytes(), status.as_bytes()) {
            let _ = self.s.send(&c);
        }
        if let Ok(c) = Command::verbose(format!("alert: {say}").as_bytes(), 1) {
            let _ = self.s.send(&c);
        }
    }

    /// Plays `file` with `digit` as escape: `Some(true)` pressed,
    /// `Some(false)` played to the end (or missing), `None` hung up.
    fn play(&mut self, file: &str, digit: Option<char>) -> Option<bool> {
        let esc = digit.map(|d| d.to_string()).unwrap_or_default();
        Some(self.play_keys(file, &esc)?.is_some())
    }

    /// Plays `file` with the keys of `escape` ending it: `Some(Some(k))`
    /// the key pressed, `Some(None)` played to the end (or missing),
    /// `None` hung up.
    fn play_keys(&mut self, file: &str, escape: &str) -> Option<Option<char>> {
        let cmd = Command::stream_file(file.as_bytes(), escape.as_bytes()).ok()?;
        self.keyed(cmd, escape)
    }

    /// A command that plays something with `escape` digits (STREAM FILE,
    /// SAY NUMBER, SAY ALPHA) and answers the key pressed in `result=`.
    fn keyed(&mut self, cmd: Command, escape: &str) -> Option<Option<char>> {
        let reply = self.send(cmd)?;
        if !matches!(reply, Reply::Success { .. }) {
            return None;
        }
        match reply.result_code() {
            Some(-1) => {
                // A missing file and a dead channel both give -1: a channel
                // command tells them apart (511 on a dead channel).
                match self.send(Command::wait_for_digit(1))? {
                    Reply::Success { .. } => Some(None),
                    _ => None,
                }
            }
            Some(c) => Some(key_of(c).filter(|k| escape.contains(*k))),
            None => Some(None),
        }
    }
    /// Waits for `digit`; another key is ignored (the wait goes on).
    fn wait(&mut self, digit: char) -> Option<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(WAIT_MS as u64);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Some(false);
            }
            let reply = self.send(Command::wait_for_digit(left.as_millis() as i64))?;
            if !matches!(reply, Reply::Success { .. }) {
                return None;
            }
            match reply.result_code() {
                Some(0) => return Some(false),
                Some(-1) => return None,
                Some(c) if c == digit as i64 => return Some(true),
                _ => continue,
            }
        }
    }
}

/// The key in a `result=` code (its ASCII value); `None` for 0 (none).
fn key_of(code: i64) -> Option<char> {
    u8::try_from(code)
        .ok()
        .map(char::from)
        .filter(|c| c.is_ascii_digit() || matches!(c, '*' | '#'))
}

/// Commands Asterisk answers on a dead channel too.
fn is_dead_safe(cmd: &Command) -> bool {
    let b = cmd.as_bytes();
    b.starts_with(b"SET VARIABLE") || b.starts_with(b"VERBOSE") || b.starts_with(b"GET ")
}

fn run<R: agi_callback::agi::Lookahead, W: Write>(reader: R, writer: W) -> i32 {
    let mut s = Session::new(reader, writer);
    let env = match s.read_env().and_then(|e| {
        e.check_standard().map_err(SessionError::Env)?;
        Ok(e)
    }) {
        Ok(e) => e,
        Err(e) => {
            log_line(Level::Error, &format!("bad AGI environment: {e}"));
            return 1;
        }
    };
    let mut agi = Agi { s, gone: false };
    let arg = |n| env.arg(n).map(|a| String::from_utf8_lossy(a).into_owned());
    if arg(1).as_deref() == Some("heartbeat") {
        return heartbeat(&mut agi, &arg(2).unwrap_or_default());
    }
    if arg(1).as_deref() == Some("oncall") {
        return oncall_line(&mut agi, &arg(2).unwrap_or_default());
    }
    if arg(1).as_deref() == Some("line") {
        let callerid = env.callerid().unwrap_or_default().to_vec();
        return line::line(&mut agi, &callerid);
    }
    let call_id: Option<i64> = arg(1).and_then(|a| a.trim().parse().ok());
    let failed = arg(2).as_deref() == Some("failed");
    let Some(call_id) = call_id else {
        let m = format!(
            "no call id in the first argument ({:?}); the dialplan passes ${{ALERT_CALL}}",
            arg(1).unwrap_or_default()
        );
        log_line(Level::Error, &m);
        agi.status("ERROR", &m);
        return 1;
    };
    let path = default_path();
    let cfg = match AlertsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            let m = e.to_string();
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            return 1;
        }
    };
    // The one door: open, remove staging leftovers, settle what the spool
    // owes from earlier attempts (ids another process holds are left to it).
    let pager = match Pager::start(cfg) {
        Ok((p, finished)) => {
            for e in &finished.failed {
                log_line(Level::Warn, &format!("still owed: {}", error_chain(e)));
            }
            p
        }
        Err(e) => {
            let m = error_chain(&e);
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            return 1;
        }
    };
    if failed {
        let reason = arg(3).unwrap_or_default();
        let outcome = Outcome::from_reason(&reason);
        return match pager.record_outcome(call_id, outcome) {
            Ok(Recorded::Done { unacked }) => {
                log_line(
                    Level::Info,
                    &format!("call {call_id}: {outcome} (REASON {reason})"),
                );
                if let Some(id) = unacked {
                    warn_unacked(&id);
                }
                agi.status("RECORDED", &format!("call {call_id}: {outcome}"));
                0
            }
            Ok(Recorded::UnknownCall) => {
                let m = format!(
                    "call {call_id}: unknown (not in the alert database); REASON {reason} not recorded"
                );
                log_line(Level::Error, &m);
                agi.status("ERROR", &m);
                1
            }
            Err(e) => {
                let m = format!("call {call_id}: {}", error_chain(&e));
                log_line(Level::Error, &m);
                agi.status("ERROR", &m);
                1
            }
        };
    }
    answered(&mut agi, &pager, call_id)
}

/// `AGI(alert,heartbeat,NAME)`: the heartbeat's timer ran. A ping came
/// since: the next timer (`ALIVE`); the deadline passed: the alert raised
/// (`RAISED`); else nothing (`IDLE`). When the database cannot be used,
/// nothing is raised and a timer due in 60 s is published instead, so the
/// switch is never lost (`ERROR`).
fn heartbeat<R: io::BufRead, W: Write>(agi: &mut Agi<R, W>, name: &str) -> i32 {
    const RETRY: i64 = 60;
    let cfg = match AlertsConfig::load(&default_path()) {
        Ok(c) => c,
        Err(e) => {
            let m = format!("heartbeat {}: {e}", escape_bytes(name.as_bytes()));
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            return 1;
        }
    };
    if !cfg.heartbeats.contains_key(name) {
        let m = format!(
            "heartbeat {}: not in the config (removed?): nothing to do",
            escape_bytes(name.as_bytes())
        );
        log_line(Level::Warn, &m);
        agi.status("IDLE", &m);
        return 0;
    }
    let spool_dir = cfg.spool_dir.clone();
    let r = Pager::start(cfg).and_then(|(p, finished)| {
        for e in &finished.failed {
            log_line(Level::Warn, &format!("still owed: {}", error_chain(e)));
        }
        p.heartbeat_timer(name, agi_callback::alert::pager::unix_now())
    });
    match r {
        Ok(v) => {
            log_line(
                Level::Info,
                &format!("heartbeat {name}: timer ran: {}", v.status()),
            );
            agi.status(v.status(), &format!("heartbeat {name}: {}", v.status()));
            0
        }
        Err(e) => {
            let retry = agi_callback::alert::pager::publish_retry_timer(&spool_dir, name, RETRY);
            let m = format!(
                "heartbeat {name}: {}; nothing raised; {}",
                error_chain(&e),
                match &retry {
                    Ok(f) => format!("the timer is re-published as {f}, due in {RETRY} s"),
                    Err(e2) => format!(
                        "and the timer could not be re-published: {}",
                        error_chain(e2)
                    ),
                }
            );
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            1
        }
    }
}

/// `AGI(alert,oncall,SCHEDULE)`: the on-call line. Sets ONCALL_NAME,
/// ONCALL_NUMBER and ONCALL_DIAL (who is on call; `call.channel` rendered
/// for the number), ONCALL_NEXT_DIAL (the next to try: the layer below or
/// the fallback; empty when there is none) and ONCALL_STATUS: OK, NOBODY,
/// UNKNOWN_SCHEDULE or ERROR. Nothing is said: the dialplan dials.
fn oncall_line<R: io::BufRead, W: Write>(agi: &mut Agi<R, W>, schedule: &str) -> i32 {
    let set = |agi: &mut Agi<R, W>, k: &str, v: &str| {
        if let Ok(c) = Command::set_variable(k.as_bytes(), v.as_bytes()) {
            let _ = agi.send(c);
        }
    };
    let shown = escape_bytes(schedule.as_bytes());
    let cfg = match AlertsConfig::load(&default_path()) {
        Ok(c) => c,
        Err(e) => {
            let m = format!("on-call line {shown}: {e}");
            log_line(Level::Error, &m);
            agi.status_word("ONCALL_STATUS", "ERROR", &m);
            return 1;
        }
    };
    if !cfg.schedules.contains_key(schedule) {
        let m = format!("on-call line: no schedule {shown:?} in the config");
        log_line(Level::Error, &m);
        agi.status_word("ONCALL_STATUS", "UNKNOWN_SCHEDULE", &m);
        return 1;
    }
    let route = Pager::open(cfg)
        .and_then(|p| p.line_route(schedule, agi_callback::alert::pager::unix_now()));
    match route {
        Ok(r) => {
            let Some(first) = r.first else {
                let m = format!("on-call line {shown}: nobody is on call");
                log_line(Level::Warn, &m);
                set(agi, "ONCALL_NEXT_DIAL", "");
                agi.status_word("ONCALL_STATUS", "NOBODY", &m);
                return 0;
            };
            set(agi, "ONCALL_NAME", &first.contact);
            set(agi, "ONCALL_NUMBER", &first.number);
            set(agi, "ONCALL_DIAL", &first.dial);
            let next = r.next.as_ref().map_or("", |n| n.dial.as_str());
            set(agi, "ONCALL_NEXT_DIAL", next);
            let m = format!(
                "on-call line {shown}: {} ({}), next {}",
                first.contact,
                first.why.text(),
                r.next.as_ref().map_or("nobody", |n| n.contact.as_str())
            );
            log_line(Level::Info, &m);
            agi.status_word("ONCALL_STATUS", "OK", &m);
            0
        }
        Err(e) => {
            let m = format!("on-call line {shown}: {}", error_chain(&e));
            log_line(Level::Error, &m);
            agi.status_word("ONCALL_STATUS", "ERROR", &m);
            1
        }
    }
}

fn warn_unacked(id: &str) {
    log_line(
        Level::Warn,
        &format!("alert {id} unacknowledged: every planned call has an outcome and nobody pressed the key"),
    );
}

fn answered<R: io::BufRead, W: Write>(agi: &mut Agi<R, W>, pager: &Pager, call_id: i64) -> i32 {
    let info = match pager.call_info(call_id) {
        Ok(Some(i)) => i,
        Ok(None) => {
            let m = format!("no call {call_id} in the alert database");
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            return 1;
        }
        Err(e) => {
            let m = error_chain(&e);
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            return 1;
        }
    };
    let lang = pager.config().language_of(&info.contact);
    let stale_file = pager.phrase_sound(&lang, Phrase::Stale, "vm-goodbye");
    if !info.is_live() {
        let _ = pager.record_outcome(call_id, Outcome::Stale);
        log_line(
            Level::Info,
            &format!(
                "alert {} call {call_id} to {}: stale ({})",
                info.alert_id, info.contact, info.state
            ),
        );
        agi.play(&stale_file, None);
        agi.status(
            "STALE",
            &format!("alert {} is {}", info.alert_id, info.state),
        );
        return 0;
    }
    let message = pager.message_sound(&info, &lang);
    let digit = pager.config().ack_digit;
    let mut pressed = false;
    for _ in 0..ROUNDS {
        match agi.play(&message, Some(digit)) {
            Some(true) => {
                pressed = true;
                break;
            }
            Some(false) => {}
            None => break,
        }
        match agi.wait(digit) {
            Some(true) => {
                pressed = true;
                break;
            }
            Some(false) => {}
            None => break,
        }
    }
    if !pressed {
        let unacked = pager.record_outcome(call_id, Outcome::AnsweredNoAck);
        log_line(
            Level::Info,
            &format!(
                "alert {} call {call_id} to {}: answered, no ack{}",
                info.alert_id,
                info.contact,
                if agi.gone { " (hung up)" } else { "" }
            ),
        );
        if let Ok(Recorded::Done { unacked: Some(id) }) = unacked {
            warn_unacked(&id);
        }
        agi.status(
            "NOACK",
            &format!("alert {}: answered without the ack digit", info.alert_id),
        );
        return 0;
    }
    match pager.ack_by_call(call_id) {
        Ok(Some(PhoneAck::Won {
            alert_id,
            cancelled,
        })) => {
            log_line(
                Level::Info,
                &format!(
                    "alert {alert_id} acked by {} (call {call_id}); {cancelled} pending call(s) removed",
                    info.contact,
                ),
            );
            let ok = pager.phrase_sound(&lang, Phrase::Acked, "auth-thankyou");
            agi.play(&ok, None);
            agi.status(
                "ACKED",
                &format!("alert {alert_id} acked by {}", info.contact),
            );
            0
        }
        Ok(Some(PhoneAck::Stale { state, .. })) => {
            log_line(
                Level::Info,
                &format!(
                    "alert {} call {call_id} to {}: pressed, but already {state}",
                    info.alert_id, info.contact
                ),
            );
            agi.play(&stale_file, None);
            agi.status(
                "STALE",
                &format!("alert {} is already {state}", info.alert_id),
            );
            0
        }
        Ok(None) => {
            agi.status("ERROR", &format!("no call {call_id}"));
            1
        }
        Err(e) => {
            let m = format!("call {call_id}: {}", error_chain(&e));
            log_line(Level::Error, &m);
            agi.status("ERROR", &m);
            1
        }
    }
}
