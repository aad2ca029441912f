//! Heartbeats through the real binaries: `autodial heartbeat`, the timer
//! run of the `alert` AGI (`AGI(alert,heartbeat,NAME)`, on an env block
//! captured from Asterisk 22.10 with its arguments replaced), and the
//! receiver's `/heartbeats`. A deadline is moved into the past through the
//! library's store (time is an input), never by sleeping.

mod common;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use agi_callback::alert::store::Store;
use serde_json::Value;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

use common::Pbx;

const HEARTBEATS: &str = r#"{"prom": {"timeout_seconds": 300, "chain": "ops",
        "text": "Prometheus has stopped sending its watchdog."},
    "backup": {"timeout_seconds": 93600, "labels": {"team": "db"},
        "text": "The nightly backup did not report in 26 hours."}}"#;

impl Pbx {
    fn new() -> Pbx {
        let pbx = Pbx::empty();
        pbx.config(HEARTBEATS);
        pbx
    }

    fn config(&self, heartbeats: &str) {
        self.write_config(&format!(
            r#""call": {{"channel": "Local/{{number}}@alert-phones"}},
              "contacts": {{"ivan": {{"number": "1001"}}, "petr": {{"number": "1002"}}}},
              "chains": {{"ops": {{"steps": [{{"contacts": ["ivan"]}}, {{"contacts": ["petr"], "after_seconds": 120}}]}},
                         "db": {{"steps": [{{"contacts": ["petr"]}}]}}}},
              "routes": [{{"match": {{"team": "db"}}, "chain": "db"}}],
              "heartbeats": {heartbeats},
              "speech": {{"engine": "none"}}"#
        ));
    }

    fn list(&self) -> (i32, Value) {
        let o = self.run(&["heartbeat", "list", "--json"]);
        (
            o.status.code().unwrap(),
            serde_json::from_slice(&o.stdout).unwrap(),
        )
    }

    fn hb(&self, name: &str) -> Value {
        let (_, v) = self.list();
        v.as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .cloned()
            .unwrap()
    }

    /// The timer's run, as `[autodial-heartbeat]` starts it; (exit code,
    /// ALERT_STATUS).
    fn timer_run(&self, name: &str) -> (i32, String) {
        let out = common::alert_agi(
            &self.path("alerts.json"),
            self.dir.path(),
            "answered-ack",
            &["heartbeat", name],
            "200 result=1\n200 result=1\n",
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        let status = said
            .lines()
            .find_map(|l| l.strip_prefix("SET VARIABLE ALERT_STATUS "))
            .unwrap_or("")
            .trim_matches('"')
            .to_string();
        (out.status.code().unwrap(), status)
    }

    /// Moves heartbeat `name`'s deadline to `at`, and its timer's due
    /// time to `at` or the past, whichever is earlier (as if time had
    /// passed and the timer is running now).
    fn set_deadline(&self, name: &str, at: i64) {
        let mut s = Store::open(&self.path("state")).unwrap();
        s.heartbeat_update(name, |h| {
            let mut n = h.clone();
            n.deadline = Some(at);
            if let Some((_, due)) = n.timer.as_mut() {
                *due = (*due).min(at).min(now() - 1);
            }
            (n, ())
        })
        .unwrap();
    }
}

fn mtime(p: &Path) -> i64 {
    fs::metadata(p)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn armed_at_the_first_ping_one_timer_file_however_many_pings() {
    let pbx = Pbx::new();
    // never pinged: listed, no page, and `list` exits 1 (a cron typo shows)
    let (code, v) = pbx.list();
    assert_eq!(code, 1);
    assert_eq!(v[0]["name"], "backup");
    assert_eq!(v[1]["state"], "never_pinged");
    assert!(pbx.outgoing().is_empty());
    pbx.ok(4, &["heartbeat", "ping", "nope"]);
    let t0 = now();
    let p = pbx.ok(0, &["heartbeat", "ping", "prom", "--json"]);
    assert_eq!(p["status"], "ok");
    assert_eq!(pbx.outgoing(), ["heartbeat-prom-1.call"]);
    let due = mtime(&pbx.path("spool/outgoing/heartbeat-prom-1.call"));
    assert!((t0 + 300..=now() + 300).contains(&due), "due {due}");
    let body = fs::read_to_string(pbx.path("spool/outgoing/heartbeat-prom-1.call")).unwrap();
    assert!(
        body.contains("Channel: Local/s@autodial-heartbeat"),
        "{body}"
    );
    assert!(body.contains("Context: autodial-heartbeat"), "{body}");
    assert!(body.contains("Extension: hb-prom"), "{body}");
    // more pings: the deadline moves, no new file
    for _ in 0..5 {
        pbx.ok(0, &["heartbeat", "ping", "prom"]);
    }
    assert_eq!(pbx.outgoing(), ["heartbeat-prom-1.call"]);
    let h = pbx.hb("prom");
    assert_eq!(
        (h["state"].as_str(), h["timer"].as_str()),
        (Some("healthy"), Some("pending"))
    );
    pbx.ok(0, &["heartbeat", "ping", "backup"]);
    assert_eq!(pbx.list().0, 0, "all pinged");
}

#[test]
fn the_timer_re_arms_after_a_ping_and_raises_once_when_the_deadline_passed() {
    let pbx = Pbx::new();
    pbx.ok(0, &["heartbeat", "ping", "prom"]);
    // a ping came since the timer was set: ALIVE, the next timer under a
    // new name at the new deadline (the running one is Asterisk's)
    let deadline = now() + 200;
    pbx.set_deadline("prom", deadline);
    assert_eq!(pbx.timer_run("prom"), (0, "ALIVE".into()));
    assert_eq!(
        pbx.outgoing(),
        ["heartbeat-prom-1.call", "heartbeat-prom-2.call"]
    );
    assert_eq!(
        mtime(&pbx.path("spool/outgoing/heartbeat-prom-2.call")),
        deadline
    );
    fs::remove_file(pbx.path("spool/outgoing/heartbeat-prom-1.call")).unwrap();
    // no ping since: the deadline passed: RAISED through the usual path
    pbx.set_deadline("prom", now() - 1);
    assert_eq!(pbx.timer_run("prom"), (0, "RAISED".into()));
    let a = pbx.show("hb-prom");
    assert_eq!(a["state"], "firing");
    assert_eq!(a["chain"], "ops");
    assert_eq!(a["text"], "Prometheus has stopped sending its watchdog.");
    assert_eq!(pbx.hb("prom")["state"], "expired");
    assert!(pbx
        .outgoing()
        .contains(&"alert-hb-prom-e1-r0-s0-ivan.call".to_string()));
    // it pages once per expiry: another run does nothing
    fs::remove_file(pbx.path("spool/outgoing/heartbeat-prom-2.call")).unwrap();
    assert_eq!(pbx.timer_run("prom"), (0, "IDLE".into()));
    assert_eq!(pbx.show("hb-prom")["episode"], 1);
    // a ping recovers it: the alert resolved, its calls removed, re-armed
    let p = pbx.ok(0, &["heartbeat", "ping", "prom", "--json"]);
    assert_eq!(p["status"], "recovered");
    assert_eq!(pbx.show("hb-prom")["state"], "resolved");
    assert_eq!(pbx.outgoing(), ["heartbeat-prom-3.call"]);
    // the heartbeat routed by labels pages its route's chain
    pbx.ok(0, &["heartbeat", "ping", "backup"]);
    pbx.set_deadline("backup", now() - 1);
    assert_eq!(pbx.timer_run("backup"), (0, "RAISED".into()));
    assert_eq!(pbx.show("hb-backup")["chain"], "db");
}

#[test]
fn nothing_silently_disarms_a_heartbeat() {
    let pbx = Pbx::new();
    pbx.ok(0, &["heartbeat", "ping", "prom"]);
    pbx.ok(0, &["heartbeat", "ping", "backup"]);
    // the timer file removed by hand: `list` says so (exit 1) ...
    fs::remove_file(pbx.path("spool/outgoing/heartbeat-prom-1.call")).unwrap();
    let (code, _) = pbx.list();
    assert_eq!(code, 1);
    assert_eq!(pbx.hb("prom")["timer"], "missing");
    // ... and any other command puts it back, due at the deadline
    pbx.ok(0, &["alert", "list"]);
    assert_eq!(
        pbx.outgoing(),
        ["heartbeat-backup-1.call", "heartbeat-prom-2.call"]
    );
    assert_eq!(pbx.hb("prom")["timer"], "pending");
    // the next ping does too
    fs::remove_file(pbx.path("spool/outgoing/heartbeat-prom-2.call")).unwrap();
    pbx.ok(0, &["heartbeat", "ping", "prom"]);
    assert!(pbx
        .outgoing()
        .contains(&"heartbeat-prom-3.call".to_string()));
    // the database unusable during a run: nothing raised, and a timer due
    // in 60 s published instead
    let db = pbx.path("state/alerts.db");
    let saved = fs::read(&db).unwrap();
    fs::write(&db, b"this is not a database, whatever SQLite thinks").unwrap();
    let _ = fs::remove_file(pbx.path("state/alerts.db-wal"));
    let _ = fs::remove_file(pbx.path("state/alerts.db-shm"));
    let (code, status) = pbx.timer_run("prom");
    assert_eq!((code, status.as_str()), (1, "ERROR"));
    let retry: Vec<String> = pbx
        .outgoing()
        .into_iter()
        .filter(|f| f.starts_with("heartbeat-prom-retry"))
        .collect();
    assert_eq!(retry.len(), 1, "{:?}", pbx.outgoing());
    let due = mtime(&pbx.path(&format!("spool/outgoing/{}", retry[0])));
    assert!(
        (now() + 55..=now() + 60).contains(&due),
        "due in {} s",
        due - now()
    );
    let log = fs::read_to_string(pbx.path("autodial-alert.log")).unwrap();
    assert!(log.contains("nothing raised"), "{log}");
    fs::write(&db, saved).unwrap();
    // removed from the config: disarmed by the next command
    pbx.config(r#"{"backup": {"timeout_seconds": 93600, "chain": "db", "text": "x"}}"#);
    pbx.ok(0, &["alert", "list"]);
    assert!(
        !pbx.outgoing()
            .iter()
            .any(|f| f.starts_with("heartbeat-prom-") && !f.contains("retry")),
        "{:?}",
        pbx.outgoing()
    );
    let (_, v) = pbx.list();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // renamed: starts as never pinged
    pbx.config(r#"{"prometheus": {"timeout_seconds": 300, "chain": "ops", "text": "x"}}"#);
    assert_eq!(pbx.hb("prometheus")["state"], "never_pinged");
}

#[test]
fn pause_and_resume() {
    let pbx = Pbx::new();
    pbx.ok(0, &["heartbeat", "ping", "prom"]);
    pbx.ok(0, &["heartbeat", "ping", "backup"]);
    let v = pbx.ok(0, &["heartbeat", "pause", "prom", "--json"]);
    assert_eq!(v["state"], "paused");
    assert_eq!(pbx.outgoing(), ["heartbeat-backup-1.call"]);
    // paused: a run does nothing, a ping is only noted, `list` is content
    pbx.set_deadline("prom", now() - 1);
    assert_eq!(pbx.timer_run("prom"), (0, "IDLE".into()));
    pbx.ok(0, &["heartbeat", "ping", "prom"]);
    assert_eq!(pbx.hb("prom")["state"], "paused");
    assert_eq!(pbx.list().0, 0);
    let t = now();
    let v = pbx.ok(0, &["heartbeat", "resume", "prom", "--json"]);
    assert_eq!(v["state"], "healthy");
    assert_eq!(
        pbx.outgoing(),
        ["heartbeat-backup-1.call", "heartbeat-prom-2.call"]
    );
    assert!(mtime(&pbx.path("spool/outgoing/heartbeat-prom-2.call")) >= t + 300);
    pbx.ok(4, &["heartbeat", "pause", "nope"]);
    // pausing an expired heartbeat resolves its alert (the silence is
    // known; once resumed, no ping would)
    pbx.set_deadline("backup", now() - 1);
    assert_eq!(pbx.timer_run("backup"), (0, "RAISED".into()));
    assert_eq!(pbx.show("hb-backup")["state"], "firing");
    pbx.ok(0, &["heartbeat", "pause", "backup"]);
    assert_eq!(pbx.show("hb-backup")["state"], "resolved");
    assert!(!pbx
        .outgoing()
        .iter()
        .any(|f| f.starts_with("alert-hb-backup")));
}

#[test]
fn pings_racing_timer_runs_never_lose_the_timer_and_never_raise_twice() {
    for round in 0..4 {
        let pbx = Pbx::new();
        pbx.ok(0, &["heartbeat", "ping", "prom"]);
        pbx.set_deadline("prom", now() - 1);
        std::thread::scope(|s| {
            for i in 0..8 {
                let pbx = &pbx;
                s.spawn(move || {
                    if (i + round) % 2 == 0 {
                        pbx.timer_run("prom");
                    } else {
                        pbx.run(&["heartbeat", "ping", "prom"]);
                    }
                });
            }
        });
        let episodes: Vec<Value> = pbx
            .ok(0, &["alert", "list", "--all", "--json"])
            .as_array()
            .unwrap()
            .clone();
        assert!(episodes.len() <= 1);
        if let Some(a) = episodes.first() {
            assert_eq!(a["episode"], 1, "raised twice: {a}");
        }
        let h = pbx.hb("prom");
        match h["state"].as_str().unwrap() {
            "healthy" => {
                // exactly its timer is pending (beside the one that "ran")
                let f = h["timer_file"].as_str().unwrap().to_string();
                assert_eq!(h["timer"], "pending", "round {round}: {h}");
                let timers: Vec<String> = pbx
                    .outgoing()
                    .into_iter()
                    .filter(|n| n.starts_with("heartbeat-") && n != "heartbeat-prom-1.call")
                    .collect();
                assert_eq!(timers, [f], "round {round}");
                // and its alert, if it was raised, is resolved
                if let Some(a) = episodes.first() {
                    assert_eq!(pbx.show("hb-prom")["state"], "resolved", "{a}");
                }
            }
            "expired" => assert_eq!(pbx.show("hb-prom")["state"], "firing"),
            s => panic!("round {round}: state {s}"),
        }
    }
}

#[test]
fn the_receiver_takes_pings_lists_heartbeats_and_counts_them() {
    const TOKEN: &str = "hb-token";
    let pbx = Pbx::new();
    let srv = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
    // Alertmanager's Watchdog webhook posts straight here: any body
    let am = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/alertmanager-0.25/01-firing-group-two-alerts.json"
    ))
    .unwrap();
    let (st, b) = common::http(srv.port, "POST", "/heartbeats/prom", Some(TOKEN), &am);
    assert_eq!(st, 200, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["heartbeat"]["state"].as_str()),
        (Some("ok"), Some("healthy"))
    );
    assert_eq!(pbx.outgoing(), ["heartbeat-prom-1.call"]);
    let (st, _) = common::http(
        srv.port,
        "POST",
        "/heartbeats/prom",
        Some(TOKEN),
        b"not json at all",
    );
    assert_eq!(st, 200);
    assert_eq!(
        pbx.outgoing(),
        ["heartbeat-prom-1.call"],
        "a ping writes no file"
    );
    let (st, b) = common::http(srv.port, "POST", "/heartbeats/nope", Some(TOKEN), b"");
    assert_eq!(st, 404, "{b}");
    assert_eq!(
        common::http(srv.port, "POST", "/heartbeats/prom", None, b"").0,
        401
    );
    let big = vec![b'x'; 2 << 20];
    assert_eq!(
        common::http(srv.port, "POST", "/heartbeats/prom", Some(TOKEN), &big).0,
        413
    );
    let (st, b) = common::http(srv.port, "GET", "/heartbeats", Some(TOKEN), b"");
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&b).unwrap();
    let states: Vec<&str> = v["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["never_pinged", "healthy"]);
    let (st, b) = common::http(srv.port, "GET", "/heartbeats/prom", Some(TOKEN), b"");
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&b).unwrap()["timer_file"],
        "heartbeat-prom-1.call"
    );
    let (_, m) = common::http(srv.port, "GET", "/metrics", Some(TOKEN), b"");
    assert!(
        m.contains("autodial_heartbeats{state=\"never_pinged\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("autodial_heartbeat_state{name=\"prom\",state=\"healthy\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("autodial_heartbeat_seconds_since_ping{name=\"prom\"} "),
        "{m}"
    );
    let o = common::pipe(
        Command::new("promtool").args(["check", "metrics"]),
        m.as_bytes(),
    )
    .expect("promtool (apt install prometheus)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // the receiver's start puts a missing timer back
    drop(srv);
    fs::remove_file(pbx.path("spool/outgoing/heartbeat-prom-1.call")).unwrap();
    let _srv = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
    assert_eq!(pbx.outgoing(), ["heartbeat-prom-2.call"]);
}
