//! The alert line, `AGI(alert,line)`: the real `alert` program on an env
//! block captured from Asterisk 22.10, driven by a scripted caller that
//! answers each command as Asterisk does (keys pressed during a prompt,
//! GET DATA's digits, silence, a hang-up by EOF or SIGHUP).

mod common;
use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};

use agi_callback::alert::config::AlertsConfig;
use agi_callback::alert::pager::{Pager, RaiseRequest};
use serde_json::Value;

const AUTODIAL: &str = env!("CARGO_BIN_EXE_autodial");

use common::Pbx;

const RU: &str = r#""rewrite": [{"prefix": "+7", "replace": "8"},
                              {"prefix": "7", "replace": "8", "digits": 11}]"#;

impl Pbx {
    /// ivan (PIN 4711, a desk phone too), olga (PIN 2468), petr (no PIN);
    /// a schedule `dba` with olga on call; `line` is the line member.
    fn new(line: &str, speech: &str) -> Pbx {
        let pbx = Pbx::empty();
        pbx.write_config(&format!(
            r#""call": {{"channel": "Local/{{number}}@alert-phones"}},
              "contacts": {{
                "ivan": {{"number": "89161112233", "pin": "4711", "numbers": ["84957776655"]}},
                "olga": {{"number": "89163334455", "pin": "2468"}},
                "petr": {{"number": "89162223344"}}}},
              "schedules": {{"dba": {{"time_zone": "UTC", "layers": [
                 {{"name": "all", "contacts": ["olga"], "shift": "1w", "start": "2020-01-06T00:00"}}]}}}},
              "chains": {{"default": {{"steps": [{{"contacts": ["ivan"]}},
                                                {{"contacts": ["petr"], "after_seconds": 600}}]}}}},
              "line": {line},
              "speech": {speech}"#
        ));
        pbx
    }

    fn pager(&self) -> Pager {
        Pager::open(AlertsConfig::load(&self.path("alerts.json")).unwrap()).unwrap()
    }

    /// Raises `ids` in order (the last is the newest, within one second
    /// too).
    fn raise(&self, ids: &[&str]) {
        let p = self.pager();
        for (i, id) in ids.iter().enumerate() {
            p.raise(
                &RaiseRequest {
                    id: id.to_string(),
                    text: format!("Alert number {i}"),
                    chain: Some("default".into()),
                    labels: BTreeMap::new(),
                    labels_cut: 0,
                },
                None,
            )
            .unwrap();
        }
    }
}

/// One call to the line as it went.
struct Call {
    code: i32,
    /// Every command the program sent, in order.
    said: Vec<String>,
    pid: u32,
}

impl Call {
    fn var(&self, name: &str) -> Option<String> {
        self.said
            .iter()
            .filter_map(|l| l.strip_prefix(&format!("SET VARIABLE {name} ")))
            .next_back()
            .map(|v| v.trim_matches('"').to_string())
    }
    fn count(&self, prefix: &str) -> usize {
        self.said.iter().filter(|l| l.starts_with(prefix)).count()
    }
    fn has(&self, needle: &str) -> bool {
        self.said.iter().any(|l| l.contains(needle))
    }
}

/// Calls the line from `callerid`; `answer` gets each command (and the
/// program's pid) and gives Asterisk's reply, or `None` to hang up (EOF).
fn call(pbx: &Pbx, callerid: &str, mut answer: impl FnMut(&str, u32) -> Option<String>) -> Call {
    let env = fs::read_to_string(format!(
        "{}/fixtures/asterisk-22.10/alert-flow/answered-ack.env.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut block: String = env
        .lines()
        .filter(|l| !l.starts_with("agi_arg_") && !l.is_empty())
        .map(|l| {
            if l.starts_with("agi_callerid:") {
                format!("agi_callerid: {callerid}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    block.push_str("agi_arg_1: line\n\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert"))
        .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
        .env("AST_LOG_DIR", pbx.dir.path())
        .arg("line")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = Some(child.stdin.take().unwrap());
    stdin.as_mut().unwrap().write_all(block.as_bytes()).unwrap();
    let mut said = vec![];
    for l in BufReader::new(child.stdout.take().unwrap()).lines() {
        let l = l.unwrap();
        said.push(l.clone());
        let Some(w) = stdin.as_mut() else { continue };
        match answer(&l, pid) {
            Some(r) => {
                if w.write_all(format!("{r}\n").as_bytes()).is_err() {
                    stdin = None;
                }
            }
            None => stdin = None,
        }
    }
    drop(stdin);
    let code = child.wait().unwrap().code().unwrap_or(-1);
    Call { code, said, pid }
}

/// A caller who types `pins` at each GET DATA (then lets it time out)
/// and presses `keys` at each wait after an alert (`None`: silence, as
/// when the list runs out); prompts play to the end.
fn caller(pins: &[&str], keys: &[Option<char>]) -> impl FnMut(&str, u32) -> Option<String> {
    let mut pins: VecDeque<String> = pins.iter().map(|s| s.to_string()).collect();
    let mut keys: VecDeque<Option<char>> = keys.iter().copied().collect();
    move |cmd, _| Some(asterisk(cmd, &mut pins, &mut keys))
}

/// Asterisk's reply to `cmd` for a caller who types `pins` and presses
/// `keys` at the waits.
fn asterisk(cmd: &str, pins: &mut VecDeque<String>, keys: &mut VecDeque<Option<char>>) -> String {
    if cmd.starts_with("GET DATA") {
        match pins.pop_front() {
            Some(p) if !p.is_empty() => format!("200 result={p}"),
            _ => "200 result= (timeout)".into(),
        }
    } else if cmd.starts_with("WAIT FOR DIGIT") {
        match keys.pop_front().flatten() {
            Some(k) => format!("200 result={}", k as u32),
            None => "200 result=0".into(),
        }
    } else if cmd.starts_with("STREAM FILE") || cmd.starts_with("SAY ") {
        "200 result=0 endpos=8000".into()
    } else {
        "200 result=1".into()
    }
}

/// The files played (STREAM FILE), in order.
fn played(c: &Call) -> Vec<String> {
    c.said
        .iter()
        .filter_map(|l| l.strip_prefix("STREAM FILE \""))
        .map(|l| l.split('"').next().unwrap().to_string())
        .collect()
}

const NO_SPEECH: &str = r#"{"engine": "none"}"#;

#[test]
fn unknown_and_refused_numbers_hear_not_registered_and_nothing_else() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    pbx.raise(&["a1"]);
    for from in ["89990000000", "unknown", "anonymous", "+7916111223x"] {
        let c = call(&pbx, from, caller(&[], &[]));
        assert_eq!(c.code, 0, "{from}");
        assert_eq!(c.var("LINE_STATUS").as_deref(), Some("DENIED"), "{from}");
        assert_eq!(played(&c), ["ss-noservice"], "{from}: {:?}", c.said);
        assert_eq!(c.count("GET DATA"), 0);
        assert_eq!(c.count("SAY "), 0, "not even the count");
    }
    // petr has no PIN and caller IDs are not trusted: refused alike
    let c = call(&pbx, "+79162223344", caller(&[], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("DENIED"));
    assert_eq!(played(&c), ["ss-noservice"]);
    let log = pbx.log();
    assert!(
        log.contains("line call from 89990000000: DENIED (not registered)"),
        "{log}"
    );
    assert!(
        log.contains("line call from +79162223344 (petr): DENIED (no PIN, and line.trust_caller_id is false)"),
        "{log}"
    );
    // trusted: petr is let in on caller ID alone, no PIN asked
    let trusted = Pbx::new(&format!("{{{RU}, \"trust_caller_id\": true}}"), NO_SPEECH);
    trusted.raise(&["a1"]);
    let c = call(&trusted, "79162223344", caller(&[], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"), "{:?}", c.said);
    assert_eq!(c.count("GET DATA"), 0);
    assert!(c.has("SAY NUMBER 1 "), "{:?}", c.said);
    // ivan has a PIN: asked even when caller IDs are trusted
    let c = call(&trusted, "89161112233", caller(&["4711"], &[]));
    assert_eq!(c.count("GET DATA"), 1);
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
}

#[test]
fn pin_right_wrong_and_locked_across_calls() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    pbx.raise(&["a1"]);
    // wrong, nothing, right: in on the third try, from the desk phone in
    // the +7 form; the PIN's length is what GET DATA waits for
    let c = call(&pbx, "+74957776655", caller(&["1234", "", "4711"], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"), "{:?}", c.said);
    assert_eq!(c.count("GET DATA \"agent-pass\" 5000 4"), 3, "{:?}", c.said);
    assert_eq!(
        played(&c).iter().filter(|f| *f == "auth-incorrect").count(),
        2
    );
    let p = pbx.pager();
    let now = agi_callback::alert::pager::unix_now();
    // one wrong PIN recorded (an empty try is not one), under the number's
    // one form
    assert_eq!(p.line_locked("84957776655", now).unwrap(), None);
    // three wrong: denied
    let c = call(&pbx, "84957776655", caller(&["1", "22", "333"], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("DENIED"));
    assert_eq!(c.count("SAY NUMBER"), 0, "nothing heard");
    // 4 wrong so far; six more (two calls of three) lock the number
    let c = call(&pbx, "84957776655", caller(&["9", "9", "9"], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("DENIED"));
    let c = call(&pbx, "84957776655", caller(&["9", "9", "9"], &[]));
    assert_eq!(
        c.var("LINE_STATUS").as_deref(),
        Some("LOCKED"),
        "{:?}",
        c.said
    );
    assert!(
        pbx.log().contains("LOCKED (ten wrong PINs within an hour"),
        "{}",
        pbx.log()
    );
    // a new process, the right PIN: still locked, not even asked
    let c = call(&pbx, "+74957776655", caller(&["4711"], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("LOCKED"));
    assert_eq!(c.count("GET DATA"), 0);
    assert_eq!(played(&c), ["vm-goodbye"]);
    // the other number of the same contact is a number of its own
    let c = call(&pbx, "89161112233", caller(&["4711"], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
    // nothing was acknowledged by any of it
    assert_eq!(pbx.show("a1")["state"], "firing");
}

#[test]
fn the_caller_hears_the_count_skips_and_acks_via_line() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    pbx.raise(&["a1", "a2", "a3"]);
    let before = pbx.outgoing();
    assert_eq!(before.len(), 6, "two calls each: {before:?}");
    // newest first: a3 (next), a2 (ack), a1 (silence)
    let c = call(
        &pbx,
        "89161112233",
        caller(&["4711"], &[Some('#'), Some('1'), None]),
    );
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
    assert!(c.has("SAY NUMBER 3 \"1#*09\""), "{:?}", c.said);
    // each alert: its message (the fallback prompt here), then who
    // acknowledged and who was called; ivan was called at once, petr not yet
    let names: Vec<&String> = c
        .said
        .iter()
        .filter(|l| l.starts_with("SAY ALPHA"))
        .collect();
    assert_eq!(names.len(), 3, "{:#?}", c.said);
    assert!(
        names.iter().all(|l| l.starts_with("SAY ALPHA \"ivan\"")),
        "{names:?}"
    );
    assert_eq!(c.count("WAIT FOR DIGIT"), 3);
    let v = pbx.show("a2");
    assert_eq!(v["state"], "acked");
    assert_eq!(v["acked_by"], "ivan");
    assert_eq!(v["acked_via"], "line");
    // a2's pending calls are gone, the others' stay
    let after = pbx.outgoing();
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(after.iter().all(|f| !f.contains("a2")), "{after:?}");
    for id in ["a1", "a3"] {
        assert_eq!(pbx.show(id)["state"], "firing");
    }
    let log = pbx.log();
    assert!(
        log.contains("line call from 89161112233 (ivan): OK; heard 3 of 3 firing; acked [a2]"),
        "{log}"
    );
    // again: two firing now, and a2 among the acked ones on request
    let c = call(
        &pbx,
        "89161112233",
        caller(&["4711"], &[Some('9'), None, None, None]),
    );
    assert!(c.has("SAY NUMBER 2 "), "{:?}", c.said);
    // 9 at the first alert: the acked count, that alert again, then the rest
    assert!(
        c.has("SAY NUMBER 1 \"\""),
        "the count of acked: {:?}",
        c.said
    );
    assert_eq!(
        c.count("WAIT FOR DIGIT"),
        4,
        "a3 twice, a1, a2: {:?}",
        c.said
    );
    // a2 is said as acknowledged by ivan
    assert!(c.said.iter().any(|l| l == "SAY ALPHA \"ivan\" \"1#*09\""));
}

#[test]
fn the_oncall_key_says_who_is_on_call_and_no_alerts_is_said() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    // nothing firing: "none", then a wait for a key; 0 says the schedule
    let c = call(&pbx, "89163334455", caller(&["2468"], &[Some('0'), None]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
    assert_eq!(played(&c)[0], "vm-nomore", "{:?}", c.said);
    assert!(c.has("SAY ALPHA \"dba\" \"\""), "{:?}", c.said);
    assert!(c.has("SAY ALPHA \"olga\" \"\""), "{:?}", c.said);
    assert_eq!(played(&c).last().unwrap(), "vm-goodbye");
}

#[test]
fn an_alert_acked_by_someone_else_while_listening_is_not_acked_twice() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    pbx.raise(&["x"]);
    let cfg = pbx.path("alerts.json");
    // while ivan hears x, olga acknowledges it from the command line
    let mut pins = VecDeque::from(["4711".to_string()]);
    let mut keys = VecDeque::from([Some('1')]);
    let c = call(&pbx, "89161112233", move |cmd, _| {
        if cmd.starts_with("WAIT FOR DIGIT") && keys.len() == 1 {
            let o = Command::new(AUTODIAL)
                .env("AUTODIAL_ALERTS", &cfg)
                .args(["alert", "ack", "x", "--by", "olga"])
                .output()
                .unwrap();
            assert_eq!(o.status.code(), Some(0));
        }
        Some(asterisk(cmd, &mut pins, &mut keys))
    });
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
    // "already acknowledged by olga"
    let i = c
        .said
        .iter()
        .position(|l| l.starts_with("WAIT FOR DIGIT"))
        .unwrap();
    assert!(
        c.said[i..].iter().any(|l| l == "SAY ALPHA \"olga\" \"\""),
        "{:?}",
        &c.said[i..]
    );
    let v = pbx.show("x");
    assert_eq!(
        (v["acked_by"].as_str(), v["acked_via"].as_str()),
        (Some("olga"), Some("cli"))
    );
    assert!(pbx.log().contains("acked []"), "{}", pbx.log());

    // two callers press at the same moment: one wins, the other hears who
    pbx.raise(&["y"]);
    let gate = Arc::new(Barrier::new(2));
    let run = |from: &'static str, pin: &'static str| {
        let gate = gate.clone();
        let pbx = &pbx;
        move || {
            let mut pins = VecDeque::from([pin.to_string()]);
            let mut keys = VecDeque::from([Some('1')]);
            let mut waited = false;
            call(pbx, from, move |cmd, _| {
                if cmd.starts_with("WAIT FOR DIGIT") && !waited {
                    waited = true;
                    gate.wait();
                }
                Some(asterisk(cmd, &mut pins, &mut keys))
            })
        }
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(run("89161112233", "4711"));
        let b = s.spawn(run("89163334455", "2468"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let v = pbx.show("y");
    let winner = v["acked_by"].as_str().unwrap().to_string();
    let loser = if winner == "ivan" { "olga" } else { "ivan" };
    let (w, l) = if winner == "ivan" { (&a, &b) } else { (&b, &a) };
    assert_eq!(v["acked_via"], "line");
    // the loser heard the winner's name after the wait
    let i = l
        .said
        .iter()
        .position(|x| x.starts_with("WAIT FOR DIGIT"))
        .unwrap();
    assert!(
        l.said[i..]
            .iter()
            .any(|x| *x == format!("SAY ALPHA \"{winner}\" \"\"")),
        "{loser}: {:?}",
        &l.said[i..]
    );
    assert!(
        played(w).contains(&"auth-thankyou".to_string()),
        "{:?}",
        w.said
    );
    assert!(!played(l).contains(&"auth-thankyou".to_string()));
    assert_eq!(pbx.log().matches("acked [y]").count(), 1, "{}", pbx.log());
}

#[test]
fn a_hang_up_mid_message_by_eof_or_sighup_records_nothing() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    pbx.raise(&["h"]);
    let before = pbx.outgoing();
    // EOF while the message plays
    let mut pins = VecDeque::from(["4711".to_string()]);
    let mut keys = VecDeque::new();
    let c = call(&pbx, "89161112233", move |cmd, _| {
        if cmd.starts_with("STREAM FILE \"tt-somethingwrong\"") {
            return None;
        }
        Some(asterisk(cmd, &mut pins, &mut keys))
    });
    assert_eq!(c.code, 0);
    // SIGHUP during the message, then 511 for every channel command, as
    // Asterisk does after a hang-up
    let mut pins = VecDeque::from(["4711".to_string()]);
    let mut keys = VecDeque::new();
    let mut hung = false;
    let c2 = call(&pbx, "89161112233", move |cmd, pid| {
        if !hung && cmd.starts_with("STREAM FILE \"tt-somethingwrong\"") {
            hung = true;
            unsafe { libc::kill(pid as i32, libc::SIGHUP) };
            return Some("200 result=-1 endpos=0".into());
        }
        if hung && !cmd.starts_with("SET VARIABLE") && !cmd.starts_with("VERBOSE") {
            return Some("511 Command Not Permitted on a dead channel or intercept routine".into());
        }
        Some(asterisk(cmd, &mut pins, &mut keys))
    });
    assert_eq!(c2.code, 0, "{:?}", c2.said);
    assert!(c2.pid > 0);
    // after the message: the one probe that tells a dead channel from a
    // missing file, then only the status
    let i = c2
        .said
        .iter()
        .position(|l| l.contains("tt-somethingwrong"))
        .unwrap();
    assert_eq!(
        c2.said[i + 1..],
        [
            "WAIT FOR DIGIT 1",
            "SET VARIABLE LINE_STATUS \"OK\"",
            "VERBOSE \"alert: line: ivan: 0 acked\" 1"
        ],
        "stopped at the hang-up"
    );
    assert_eq!(c2.var("LINE_STATUS").as_deref(), Some("OK"));
    assert_eq!(pbx.show("h")["state"], "firing");
    assert_eq!(pbx.outgoing(), before);
    assert_eq!(
        pbx.log()
            .matches("(hung up); heard 1 of 1 firing; acked []")
            .count(),
        2,
        "{}",
        pbx.log()
    );
}

/// A Pbx whose speech engine counts its runs (in the returned file) and
/// writes a short silence; the engine lives in the third (keep it).
fn counting_engine() -> (Pbx, PathBuf, Pbx) {
    let pbx0 = Pbx::new("{}", NO_SPEECH);
    let src = pbx0.path("tone.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&src, spec).unwrap();
    for _ in 0..800 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let runs = pbx0.path("runs");
    let script = pbx0.path("engine.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat > /dev/null\necho x >> '{}'\ncp '{}' \"$1\"\n",
            runs.display(),
            src.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let pbx = Pbx::new(
        &format!("{{{RU}}}"),
        &format!(
            r#"{{"engine": "command", "command": ["{}", "{{wav}}"]}}"#,
            script.display()
        ),
    );
    (pbx, runs, pbx0)
}

#[test]
fn the_receiver_renders_the_line_ahead_at_its_start() {
    let (pbx, runs, _engine) = counting_engine();
    let serve = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), "t");
    let t = std::time::Instant::now();
    while fs::read_to_string(&runs).map_or(0, |s| s.lines().count()) < 23 {
        assert!(t.elapsed().as_secs() < 20, "not rendered: {}", serve.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // the line now plays rendered phrases and names only
    pbx.raise(&["r1"]);
    let c = call(&pbx, "89161112233", caller(&["4711"], &[]));
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
    assert_eq!(c.count("SAY ALPHA"), 0, "{:?}", c.said);
    let sounds = pbx.path("state/sounds").display().to_string();
    assert!(
        played(&c).iter().all(|f| f.starts_with(&sounds)),
        "{:?}",
        c.said
    );
    let t = std::time::Instant::now();
    while !serve
        .log()
        .contains("rendered 23 phrase(s) and name(s) ahead (en)")
    {
        assert!(t.elapsed().as_secs() < 10, "{}", serve.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_config_that_cannot_be_read_is_error_and_said() {
    let pbx = Pbx::new(&format!("{{{RU}}}"), NO_SPEECH);
    fs::write(pbx.path("alerts.json"), "{ not json").unwrap();
    let c = call(&pbx, "89161112233", caller(&["4711"], &[]));
    assert_eq!(c.code, 1);
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("ERROR"));
    assert_eq!(played(&c), ["tt-somethingwrong"]);
    assert_eq!(c.count("GET DATA"), 0);
    assert!(
        pbx.log().contains("line call from 89161112233: ERROR ("),
        "{}",
        pbx.log()
    );
}

#[test]
fn two_hundred_alerts_can_be_skipped_through_and_nothing_is_rendered_during_the_call() {
    let (pbx, runs, _engine) = counting_engine();
    let n_runs = || fs::read_to_string(&runs).map_or(0, |s| s.lines().count());
    let o = Command::new(AUTODIAL)
        .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
        .args(["alert", "prepare", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let prep: Value = serde_json::from_slice(&o.stdout).unwrap();
    // 18 phrases + the menu + 3 contacts + 1 schedule, in English
    assert_eq!(prep["rendered"], 23, "{prep}");
    assert_eq!(n_runs(), 23);
    let ids: Vec<String> = (0..200).map(|i| format!("bulk-{i:03}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    pbx.raise(&refs);
    let before = n_runs();
    assert_eq!(before, 23 + 200, "one message each");
    let p = pbx.pager();
    let msg = |id: &str| {
        let v = p.show(id).unwrap().unwrap();
        v.sounds["en"].trim_end_matches(".wav").to_string()
    };
    let messages: std::collections::HashSet<String> = ids.iter().map(|i| msg(i)).collect();
    assert_eq!(messages.len(), 200);
    // # during each message: skipped at once
    let mut pins = VecDeque::from(["4711".to_string()]);
    let mut keys = VecDeque::new();
    let c = call(&pbx, "89161112233", |cmd, _| {
        let file = cmd
            .strip_prefix("STREAM FILE \"")
            .and_then(|f| f.split('"').next());
        if file.is_some_and(|f| messages.contains(f)) {
            return Some(format!("200 result={} endpos=100", '#' as u32));
        }
        Some(asterisk(cmd, &mut pins, &mut keys))
    });
    assert_eq!(c.var("LINE_STATUS").as_deref(), Some("OK"));
    assert_eq!(n_runs(), before, "nothing rendered during the call");
    assert!(
        c.has("SAY NUMBER 200 "),
        "{:?}",
        &c.said[..c.said.len().min(8)]
    );
    // every message is a rendered file, each alert heard once, newest first
    let heard: Vec<String> = played(&c)
        .into_iter()
        .filter(|f| f.starts_with(&pbx.path("state/sounds").display().to_string()))
        .collect();
    // intro: the count phrase and the menu; then 200 messages; the end
    assert_eq!(heard.len(), 2 + 200 + 1, "{}", heard.len());
    assert_eq!(c.count("WAIT FOR DIGIT"), 0, "every message was cut by #");
    assert_eq!(c.count("SAY ALPHA"), 0, "names rendered ahead");
    assert_eq!(heard[2], msg("bulk-199"), "newest first");
    assert_eq!(heard[201], msg("bulk-000"));
    assert!(heard[2..202].iter().all(|f| messages.contains(f)));
    assert!(pbx.log().contains("heard 200 of 200 firing"));
}
