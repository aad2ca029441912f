//! Phone alerts: `autodial alert` and the `alert` AGI program, the real
//! binaries, on env blocks captured from Asterisk 22.10
//! (fixtures/asterisk-22.10/alert-flow/) with scripted replies.

mod common;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use agi_callback::alert::config::AlertsConfig;
use agi_callback::alert::store::{PhoneAck, Store};
use serde_json::Value;

const AUTODIAL: &str = env!("CARGO_BIN_EXE_autodial");

struct Pbx {
    dir: tempfile::TempDir,
}

impl Pbx {
    /// A spool and a config: ivan (ru) then petr 120 s later, one repeat
    /// round 300 s after; `speech` is the speech member's JSON.
    fn new(speech: &str) -> Pbx {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("spool/outgoing")).unwrap();
        fs::create_dir_all(dir.path().join("spool/tmp")).unwrap();
        let pbx = Pbx { dir };
        pbx.config(speech, "");
        pbx
    }

    fn config(&self, speech: &str, extra_chains: &str) {
        let cfg = format!(
            r#"{{
          "call": {{"channel": "Local/{{number}}@alert-phones", "callerid": "\"Monitoring\" <84955556677>", "wait_time": 20}},
          "contacts": {{"ivan": {{"number": "1001", "language": "ru"}}, "petr": {{"number": "1002"}},
                       "anna": {{"number": "1003"}}}},
          "chains": {{"default": {{"steps": [{{"contacts": ["ivan"], "after_seconds": 0}},
                                             {{"contacts": ["petr"], "after_seconds": 120}}],
                                  "repeat": 1, "repeat_after_seconds": 300}},
                      "pair": {{"steps": [{{"contacts": ["petr", "anna"]}}]}}{extra_chains}}},
          "routes": [{{"match": {{"team": "db"}}, "chain": "default"}}],
          "speech": {speech},
          "state_dir": "{d}/state", "spool_dir": "{d}/spool"
        }}"#,
            d = self.dir.path().display()
        );
        fs::write(self.path("alerts.json"), cfg).unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn outgoing(&self) -> Vec<String> {
        common::names(&self.path("spool/outgoing"))
    }
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(AUTODIAL)
            .env("AUTODIAL_ALERTS", self.path("alerts.json"))
            .arg("alert")
            .args(args)
            .output()
            .unwrap()
    }
    fn show(&self, id: &str) -> Value {
        let o = self.cli(&["show", id, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }
    /// Runs the AGI on the captured env block of `capture` with the given
    /// AGI arguments and replies.
    fn agi(&self, capture: &str, args: &[&str], replies: &str) -> (Output, String) {
        let out = common::alert_agi(
            &self.path("alerts.json"),
            self.dir.path(),
            capture,
            args,
            replies,
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        (out, said)
    }
    fn log(&self) -> String {
        fs::read_to_string(self.path("autodial-alert.log")).unwrap_or_default()
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const NO_SPEECH: &str = r#"{"engine": "none"}"#;

fn calls(v: &Value) -> Vec<(String, u64, u64, String)> {
    v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["contact"].as_str().unwrap().to_string(),
                c["step"].as_u64().unwrap(),
                c["round"].as_u64().unwrap(),
                c["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn call_id(v: &Value, contact: &str, round: u64) -> String {
    v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact"] == contact && c["round"] == round)
        .unwrap()["id"]
        .to_string()
}

#[test]
fn raise_plans_every_call_at_once_scheduled_by_mtime() {
    let pbx = Pbx::new(NO_SPEECH);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let o = pbx.cli(&[
        "raise",
        "--id",
        "disk-db1",
        "--text",
        "Disk full on db1",
        "--label",
        "team=db",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("raised disk-db1 (episode 1): 4 calls planned, the first at"));
    assert!(
        err(&o).contains("fallback prompt tt-somethingwrong"),
        "{}",
        err(&o)
    );
    assert_eq!(
        pbx.outgoing(),
        [
            "alert-disk-db1-e1-r0-s0-ivan.call",
            "alert-disk-db1-e1-r0-s1-petr.call",
            "alert-disk-db1-e1-r1-s0-ivan.call",
            "alert-disk-db1-e1-r1-s1-petr.call"
        ]
    );
    // the spool is the scheduler: offsets 0, 120, 420, 540 from the raise
    for (f, off) in [
        ("r0-s0-ivan", 0),
        ("r0-s1-petr", 120),
        ("r1-s0-ivan", 420),
        ("r1-s1-petr", 540),
    ] {
        let m =
            fs::metadata(pbx.path(&format!("spool/outgoing/alert-disk-db1-e1-{f}.call"))).unwrap();
        let t = m
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            t >= before + off && t <= before + off + 2,
            "{f}: {t} vs {before}+{off}"
        );
    }
    let text =
        fs::read_to_string(pbx.path("spool/outgoing/alert-disk-db1-e1-r0-s1-petr.call")).unwrap();
    assert!(
        text.starts_with("Channel: Local/1002@alert-phones\n"),
        "{text}"
    );
    assert!(text.contains("Context: autodial-alert\nExtension: s\nPriority: 1\n"));
    assert!(
        text.contains("Set: ALERT_ID=disk-db1\nSet: ALERT_EPISODE=1\nSet: ALERT_CALL=2\n"),
        "{text}"
    );
    let v = pbx.show("disk-db1");
    assert_eq!(v["state"], "firing");
    assert_eq!(v["chain"], "default");
    assert_eq!(v["labels"]["team"], "db");
    assert_eq!(v["acked_by"], Value::Null);
    assert!(v["speech_error"].as_str().unwrap().contains("none"));
    assert_eq!(calls(&v).len(), 4);
}

#[test]
fn exit_codes_and_idempotent_ack_and_resolve() {
    let pbx = Pbx::new(NO_SPEECH);
    let raise = |id: &str, extra: &[&str]| {
        let mut a = vec!["raise", "--id", id, "--text", "x"];
        a.extend_from_slice(extra);
        pbx.cli(&a)
    };
    // no route matches, an unknown chain, a bad id or label: 2, nothing written
    assert_eq!(raise("a", &[]).status.code(), Some(2));
    assert_eq!(raise("a", &["--chain", "nope"]).status.code(), Some(2));
    assert_eq!(raise("../a", &["--chain", "pair"]).status.code(), Some(2));
    assert_eq!(
        raise("a", &["--chain", "pair", "--label", "novalue"])
            .status
            .code(),
        Some(2)
    );
    assert!(!pbx.path("state/alerts.db").exists());
    assert!(pbx.outgoing().is_empty());
    // raise, raise again (only the text changes): 3
    assert_eq!(raise("a", &["--chain", "pair"]).status.code(), Some(0));
    let again = pbx.cli(&[
        "raise", "--id", "a", "--text", "new text", "--chain", "pair", "--json",
    ]);
    assert_eq!(again.status.code(), Some(3));
    let j: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(j["status"], "updated");
    assert_eq!(pbx.show("a")["text"], "new text");
    assert_eq!(pbx.outgoing().len(), 2, "no new calls");
    // ack: pending calls removed; again: 0, saying so
    let o = pbx.cli(&["ack", "a", "--by", "ops-bot"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(pbx.outgoing().is_empty());
    assert_eq!(pbx.show("a")["acked_via"], "cli");
    assert!(out(&pbx.cli(&["show", "a"])).contains("acked by:    ops-bot at "));
    assert!(out(&pbx.cli(&["show", "a"])).contains("(via cli)"));
    let o = pbx.cli(&["ack", "a", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (j["state"].as_str(), j["acked_by"].as_str()),
        (Some("acked"), Some("ops-bot"))
    );
    assert_eq!(
        raise("a", &["--chain", "pair"]).status.code(),
        Some(3),
        "acked is open"
    );
    assert_eq!(pbx.cli(&["resolve", "a"]).status.code(), Some(0));
    assert!(out(&pbx.cli(&["resolve", "a"])).contains("already resolved"));
    // unknown ids: 4
    assert_eq!(pbx.cli(&["ack", "zzz"]).status.code(), Some(4));
    assert_eq!(pbx.cli(&["resolve", "zzz"]).status.code(), Some(4));
    assert_eq!(pbx.cli(&["show", "zzz"]).status.code(), Some(4));
    // resolved: a new episode calls again
    assert_eq!(raise("a", &["--chain", "pair"]).status.code(), Some(0));
    let v = pbx.show("a");
    assert_eq!(
        (v["episode"].as_u64(), v["state"].as_str()),
        (Some(2), Some("firing"))
    );
    assert!(pbx.outgoing().iter().all(|f| f.contains("-e2-")));
    // list: open ones; --all: every one
    let l: Value = serde_json::from_slice(&pbx.cli(&["list", "--json"]).stdout).unwrap();
    assert_eq!(l.as_array().unwrap().len(), 1);
    assert!(l[0].get("calls").is_none());
}

#[test]
fn the_first_contact_acks_and_the_rest_are_cancelled() {
    let pbx = Pbx::new(NO_SPEECH);
    pbx.cli(&[
        "raise",
        "--id",
        "disk-db1",
        "--text",
        "Disk full",
        "--label",
        "team=db",
    ]);
    let v = pbx.show("disk-db1");
    let ivan = call_id(&v, "ivan", 0);
    // as captured: the 1 stops the message (result=49), then the
    // confirmation plays, the status is set
    let (o, said) = pbx.agi(
        "answered-ack",
        &[&ivan],
        "200 result=49 endpos=17760\n200 result=0 endpos=8000\n200 result=1\n200 result=1\n",
    );
    assert_eq!(o.status.code(), Some(0), "{said}");
    assert!(
        said.starts_with("STREAM FILE \"tt-somethingwrong\" \"1\"\n"),
        "{said}"
    );
    assert!(
        said.contains("SET VARIABLE ALERT_STATUS \"ACKED\"\n"),
        "{said}"
    );
    let v = pbx.show("disk-db1");
    assert_eq!(v["state"], "acked");
    assert_eq!(v["acked_by"], "ivan");
    assert_eq!(v["acked_via"], "call");
    assert!(v["acked_at"].is_string());
    let c = calls(&v);
    assert_eq!(c[0].3, "answered_acked");
    assert!(c[1..].iter().all(|x| x.3 == "cancelled"), "{c:?}");
    // only the answered call's own file is left (Asterisk removes it)
    assert_eq!(pbx.outgoing(), ["alert-disk-db1-e1-r0-s0-ivan.call"]);
    assert!(pbx.log().contains("acked by ivan"));
    // a call still placed after that (its file was already being dialled)
    let petr = call_id(&v, "petr", 0);
    let (_, said) = pbx.agi(
        "answered-ack",
        &[&petr],
        "200 result=0 endpos=100\n200 result=1\n200 result=1\n",
    );
    assert!(said.contains("ALERT_STATUS \"STALE\""), "{said}");
    assert_eq!(calls(&pbx.show("disk-db1"))[1].3, "stale");
}

#[test]
fn no_key_wrong_key_and_hang_up() {
    let pbx = Pbx::new(NO_SPEECH);
    pbx.cli(&["raise", "--id", "a", "--text", "x", "--label", "team=db"]);
    let v = pbx.show("a");
    // no key: played to the end and waited, three times
    let no_key =
        "200 result=0 endpos=48000\n200 result=0\n".repeat(3) + "200 result=1\n200 result=1\n";
    let (_, said) = pbx.agi("answered-no-key", &[&call_id(&v, "ivan", 0)], &no_key);
    assert_eq!(said.matches("STREAM FILE").count(), 3, "{said}");
    assert_eq!(said.matches("WAIT FOR DIGIT").count(), 3, "{said}");
    assert!(said.contains("ALERT_STATUS \"NOACK\""), "{said}");
    assert_eq!(calls(&pbx.show("a"))[0].3, "answered_no_ack");
    // hang-up during the message: -1, then 511 for channel commands
    let (o, said) = pbx.agi(
        "caller-hangs-up-during-playback",
        &[&call_id(&v, "petr", 0)],
        "200 result=-1 endpos=8160\n511 Command Not Permitted on a dead channel or intercept routine\n200 result=1\n200 result=1\n",
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(said.contains("ALERT_STATUS \"NOACK\""), "{said}");
    assert_eq!(calls(&pbx.show("a"))[1].3, "answered_no_ack");
    // a wrong key (2) is ignored, the wait goes on; then the 1
    let (_, said) = pbx.agi(
        "answered-wrong-key-then-ack",
        &[&call_id(&v, "ivan", 1)],
        "200 result=0 endpos=48000\n200 result=50\n200 result=49\n200 result=0 endpos=10\n200 result=1\n200 result=1\n",
    );
    assert!(said.contains("ALERT_STATUS \"ACKED\""), "{said}");
    let v = pbx.show("a");
    assert_eq!(
        (v["state"].as_str(), v["acked_by"].as_str()),
        (Some("acked"), Some("ivan"))
    );
}

#[test]
fn failed_attempts_are_recorded_and_a_chain_that_runs_out_is_unacknowledged() {
    let pbx = Pbx::new(NO_SPEECH);
    pbx.cli(&["raise", "--id", "a", "--text", "x", "--label", "team=db"]);
    let v = pbx.show("a");
    for ((who, round), reason, want) in [
        (("ivan", 0), "3", "no_answer"),
        (("petr", 0), "5", "busy"),
        (("ivan", 1), "8", "failed"),
    ] {
        let (o, said) = pbx.agi(
            "failed-busy",
            &[&call_id(&v, who, round), "failed", reason],
            "200 result=1\n200 result=1\n",
        );
        assert_eq!(o.status.code(), Some(0), "{said}");
        assert!(said.contains("ALERT_STATUS \"RECORDED\""), "{said}");
        let c = calls(&pbx.show("a"));
        assert!(
            c.iter().any(|x| x.0 == who && x.2 == round && x.3 == want),
            "{c:?}"
        );
        assert_eq!(pbx.show("a")["state"], "firing");
    }
    assert!(!pbx.log().contains("[WARN]"));
    pbx.agi(
        "failed-no-answer",
        &[&call_id(&v, "petr", 1), "failed", "3"],
        "200 result=1\n200 result=1\n",
    );
    assert_eq!(pbx.show("a")["state"], "unacknowledged");
    assert_eq!(
        pbx.log().matches("[WARN] alert a unacknowledged").count(),
        1,
        "{}",
        pbx.log()
    );
    // raising it again starts a new episode
    let o = pbx.cli(&["raise", "--id", "a", "--text", "x", "--label", "team=db"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(pbx.show("a")["episode"], 2);
}

#[test]
fn two_people_press_at_the_same_moment_one_wins() {
    let pbx = Pbx::new(NO_SPEECH);
    pbx.cli(&["raise", "--id", "pair", "--text", "x", "--chain", "pair"]);
    let v = pbx.show("pair");
    let ids: Vec<i64> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    // many rounds of two processes' worth of connections racing
    let cfg = AlertsConfig::load(&pbx.path("alerts.json")).unwrap();
    let state = cfg.state_dir.clone();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = ids
        .iter()
        .map(|&id| {
            let (state, barrier) = (state.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut s = Store::open(&state).unwrap();
                barrier.wait();
                s.ack_by_call(id, agi_callback::alert::pager::unix_now())
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let r: Vec<PhoneAck> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let won = r
        .iter()
        .filter(|x| matches!(x, PhoneAck::Won { .. }))
        .count();
    assert_eq!(won, 1, "{r:?}");
    let v = pbx.show("pair");
    let outcomes: Vec<String> = calls(&v).into_iter().map(|c| c.3).collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(sorted, ["answered_acked", "stale"]);
}

#[test]
fn two_agi_processes_press_at_once_one_acked_one_stale() {
    let pbx = Pbx::new(NO_SPEECH);
    pbx.cli(&["raise", "--id", "pair", "--text", "x", "--chain", "pair"]);
    let v = pbx.show("pair");
    let ids: Vec<String> = v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].to_string())
        .collect();
    let pbx = std::sync::Arc::new(pbx);
    let hs: Vec<_> = ids
        .into_iter()
        .map(|id| {
            let pbx = pbx.clone();
            std::thread::spawn(move || {
                pbx.agi("answered-ack", &[&id], "200 result=49 endpos=100\n200 result=0 endpos=10\n200 result=1\n200 result=1\n").1
            })
        })
        .collect();
    let said: Vec<String> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    let acked = said.iter().filter(|s| s.contains("\"ACKED\"")).count();
    let stale = said.iter().filter(|s| s.contains("\"STALE\"")).count();
    assert_eq!((acked, stale), (1, 1), "{said:?}");
}

/// A wav of `secs` seconds of a 440 Hz tone at `rate`, for a fake engine.
fn tone(path: &Path, rate: u32, secs: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(rate as f64 * secs) as usize {
        let t = i as f64 / rate as f64;
        w.write_sample((8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn the_text_reaches_a_command_engine_on_stdin_only_and_comes_back_at_8k() {
    let pbx = Pbx::new(NO_SPEECH);
    let src = pbx.path("engine-out.wav");
    tone(&src, 22050, 1.0);
    let seen = pbx.path("seen-text");
    // the engine: records its stdin and argv, writes a 22.05 kHz wav
    let script = pbx.path("engine.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >> '{}'\necho '|' >> '{}'\necho \"$@\" >> '{}.argv'\ncp '{}' \"$1\"\n",
            seen.display(),
            seen.display(),
            seen.display(),
            src.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    pbx.config(
        &format!(
            r#"{{"engine": "command", "command": ["{}", "{{wav}}"]}}"#,
            script.display()
        ),
        "",
    );
    let text = "Disk \"full\"; $(touch /tmp/pwned-by-alert) `id` \n\u{202e}é";
    let o = pbx.cli(&["raise", "--id", "t", "--text", text, "--chain", "pair"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let got = fs::read_to_string(&seen).unwrap();
    let first = got.split("|\n").next().unwrap();
    assert_eq!(
        first,
        "Alert. Disk \"full\"; $(touch /tmp/pwned-by-alert) `id`  \u{202e}é. Press 1 to acknowledge."
    );
    let argv = fs::read_to_string(pbx.path("seen-text.argv")).unwrap();
    assert!(!argv.contains("Disk"), "text never in argv: {argv}");
    assert!(!Path::new("/tmp/pwned-by-alert").exists());
    let v = pbx.show("t");
    assert_eq!(v["speech_error"], Value::Null);
    let sounds: Vec<PathBuf> = fs::read_dir(pbx.path("state/sounds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!sounds.is_empty());
    for s in sounds {
        let r = hound::WavReader::open(&s).unwrap();
        let spec = r.spec();
        assert_eq!(
            (spec.sample_rate, spec.channels, spec.bits_per_sample),
            (8000, 1, 16),
            "{}",
            s.display()
        );
        let n = r.duration();
        assert!((7990..=8010).contains(&n), "1 s at 8 kHz: {n}");
    }
}

#[test]
fn a_failing_or_slow_engine_never_loses_the_alert() {
    let pbx = Pbx::new(NO_SPEECH);
    for (engine, want) in [
        (
            r#"{"engine": "command", "command": ["/nonexistent/tts", "{wav}"]}"#,
            "cannot run /nonexistent/tts",
        ),
        (
            r#"{"engine": "command", "command": ["sh", "-c", "sleep 30", "{wav}"], "timeout_seconds": 1}"#,
            "took longer than 1 s; killed",
        ),
        (
            r#"{"engine": "command", "command": ["false", "{wav}"]}"#,
            "false failed",
        ),
    ] {
        pbx.config(engine, "");
        let id = format!("e{}", want.len());
        let t = std::time::Instant::now();
        let o = pbx.cli(&["raise", "--id", &id, "--text", "x", "--chain", "pair"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        assert!(t.elapsed() < std::time::Duration::from_secs(10));
        // nothing of the engine is left behind (the sleep of the slow one)
        let ps = Command::new("pgrep")
            .args(["-f", "^sleep 30$"])
            .output()
            .unwrap();
        assert!(ps.stdout.is_empty(), "left behind: {}", out(&ps));
        assert!(err(&o).contains(want), "{}", err(&o));
        let v = pbx.show(&id);
        assert!(v["speech_error"].as_str().unwrap().contains(want));
        assert_eq!(calls(&v).len(), 2, "the calls are queued all the same");
        // the call plays the fallback prompt
        let (_, said) = pbx.agi(
            "answered-ack",
            &[&call_id(&v, "petr", 0)],
            "200 result=49 endpos=1\n200 result=0 endpos=1\n200 result=1\n200 result=1\n",
        );
        assert!(
            said.starts_with("STREAM FILE \"tt-somethingwrong\" \"1\""),
            "{said}"
        );
    }
}

#[test]
fn espeak_ng_renders_8k_mono_speech() {
    let pbx = Pbx::new(r#"{"engine": "espeak-ng", "voices": {"en": "en-us", "ru": "ru"}}"#);
    let o = pbx.cli(&[
        "raise",
        "--id",
        "sp",
        "--text",
        "Disk full on db1",
        "--label",
        "team=db",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v = pbx.show("sp");
    assert_eq!(
        v["speech_error"],
        Value::Null,
        "espeak-ng must be installed"
    );
    let mut n = 0;
    for e in fs::read_dir(pbx.path("state/sounds")).unwrap() {
        let r = hound::WavReader::open(e.unwrap().path()).unwrap();
        let s = r.spec();
        assert_eq!(
            (s.sample_rate, s.channels, s.bits_per_sample),
            (8000, 1, 16)
        );
        assert!(r.duration() > 8000, "over a second of speech");
        n += 1;
    }
    // en and ru messages, and the two phrases in each
    assert_eq!(n, 6);
    // the answered call plays the Russian message to ivan (path without .wav)
    let (_, said) = pbx.agi(
        "answered-ack",
        &[&call_id(&v, "ivan", 0)],
        "200 result=49 endpos=1\n200 result=0 endpos=1\n200 result=1\n200 result=1\n",
    );
    let first = said.lines().next().unwrap();
    assert!(
        first.starts_with(&format!(
            "STREAM FILE \"{}/state/sounds/",
            pbx.dir.path().display()
        )),
        "{first}"
    );
    assert!(!first.contains(".wav"));
}

#[test]
fn a_raise_killed_at_any_point_is_completed_by_the_next_command() {
    let pbx = Pbx::new(NO_SPEECH);
    // grow the plan so a raise takes long enough to be killed in the middle
    pbx.config(
        NO_SPEECH,
        r#", "big": {"steps": [{"contacts": ["ivan", "petr", "anna"], "after_seconds": 60}], "repeat": 20, "repeat_after_seconds": 60}"#,
    );
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut killed = 0;
    for i in 0..60 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let id = format!("k{i}");
        let mut child = Command::new(AUTODIAL)
            .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
            .args([
                "alert", "raise", "--id", &id, "--text", "x", "--chain", "big",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_micros(rng % 25_000));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        if child.wait().unwrap().code().is_none() {
            killed += 1;
        }
        // the next command completes whatever was stored
        let l = pbx.cli(&["list", "--json"]);
        assert_eq!(l.status.code(), Some(0));
        let files: Vec<String> = pbx
            .outgoing()
            .into_iter()
            .filter(|f| f.starts_with(&format!("alert-{id}-")))
            .collect();
        let o = pbx.cli(&["show", &id, "--json"]);
        match o.status.code() {
            Some(4) => assert!(files.is_empty(), "no alert, yet files: {files:?}"),
            Some(0) => {
                let v: Value = serde_json::from_slice(&o.stdout).unwrap();
                let want: Vec<String> = v["calls"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["file"].as_str().unwrap().to_string())
                    .collect();
                assert_eq!(want.len(), 63);
                let mut want = want;
                want.sort();
                assert_eq!(files, want, "{id}: every planned call queued");
            }
            other => panic!("{other:?}"),
        }
        // no staging file left for good (ours are cleaned once stale)
    }
    assert!(killed > 10, "only {killed} runs were killed mid-way");
}

#[test]
fn an_unknown_value_in_the_database_is_an_error_naming_the_row() {
    let pbx = Pbx::new(NO_SPEECH);
    let o = pbx.cli(&["raise", "--id", "odd", "--text", "x", "--chain", "pair"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // a state this program does not know (written by a newer one, or damaged)
    let db = rusqlite::Connection::open(pbx.path("state/alerts.db")).unwrap();
    db.execute(
        "UPDATE episodes SET state = 'exploded' WHERE alert_id = 'odd'",
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE calls SET outcome = 'vanished' WHERE alert_id = 'odd' AND contact = 'anna'",
        [],
    )
    .unwrap();
    drop(db);
    for args in [&["list"][..], &["show", "odd"][..]] {
        let o = pbx.cli(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let e = err(&o);
        assert!(e.contains("alert odd: unreadable row"), "{args:?}: {e}");
        assert!(
            e.contains("unknown alert state \"exploded\""),
            "{args:?}: {e}"
        );
    }
    let db = rusqlite::Connection::open(pbx.path("state/alerts.db")).unwrap();
    db.execute(
        "UPDATE episodes SET state = 'firing' WHERE alert_id = 'odd'",
        [],
    )
    .unwrap();
    drop(db);
    let o = pbx.cli(&["show", "odd"]);
    assert_eq!(o.status.code(), Some(1));
    let e = err(&o);
    assert!(e.contains("of alert odd: unreadable row"), "{e}");
    assert!(e.contains("unknown call outcome \"vanished\""), "{e}");
}
