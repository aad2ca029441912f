//! On-call schedules through the real binaries: `autodial oncall` and
//! `autodial alert`, and the receiver's `/oncall` endpoints and SIGHUP
//! reload. The schedules are built around the real clock where the raise
//! needs it (a handoff 30 minutes from now), and at fixed instants (`--at`,
//! `--from`) everywhere else.

mod common;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const TOKEN: &str = "oncall-token";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Unix seconds as `2026-11-30T07:00:00Z`.
fn z(t: i64) -> String {
    agi_callback::timefmt::rfc3339(t).unwrap()
}

use common::Pbx;

const CONTACTS: &str = r#"{"ivan": {"number": "1001"}, "petr": {"number": "1002"},
    "olga": {"number": "1003"}, "boss": {"number": "1004"}, "lead": {"number": "1005"},
    "night1": {"number": "1006"}, "night2": {"number": "1007"}}"#;

/// The issue's sample schedule.
const DBA: &str = r#"{
  "time_zone": "Europe/Moscow",
  "layers": [
    {"name": "weekly", "contacts": ["ivan", "petr", "olga"],
     "shift": "1w", "start": "2026-11-30T10:00"},
    {"name": "nights", "contacts": ["night1", "night2"],
     "shift": "1d", "start": "2026-11-30T20:00",
     "only": [{"days": ["mon", "tue", "wed", "thu", "fri"],
               "from": "20:00", "to": "08:00"}]}
  ],
  "fallback": ["boss"]
}"#;

impl Pbx {
    fn new(schedules: &str, chains: &str) -> Pbx {
        let pbx = Pbx::empty();
        pbx.config(schedules, chains);
        pbx
    }

    fn config(&self, schedules: &str, chains: &str) {
        self.write_config(&format!(
            r#""call": {{"channel": "Local/{{number}}@alert-phones"}},
              "contacts": {CONTACTS},
              "schedules": {schedules},
              "chains": {chains},
              "speech": {{"engine": "none"}}"#
        ));
    }
}

/// (contact, round, step, outcome, schedule) of every planned call.
fn calls(v: &Value) -> Vec<(String, u64, u64, String, String)> {
    v["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["contact"].as_str().unwrap().to_string(),
                c["round"].as_u64().unwrap(),
                c["step"].as_u64().unwrap(),
                c["outcome"].as_str().unwrap().to_string(),
                c["schedule"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
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

/// A rotation of ivan and petr, 1 h shifts, handing off 30 minutes from
/// now (ivan on call now, petr from +30 min, ivan again from +90 min).
fn hourly(start: i64) -> String {
    format!(
        r#"{{"rota": {{"time_zone": "Europe/Berlin", "layers": [
            {{"name": "hourly", "contacts": ["petr", "ivan"], "shift": "1h", "start": "{}"}}]}}}}"#,
        z(start)
    )
}

fn c(
    contact: &str,
    round: u64,
    step: u64,
    outcome: &str,
    schedule: &str,
) -> (String, u64, u64, String, String) {
    (contact.into(), round, step, outcome.into(), schedule.into())
}

#[test]
fn a_schedule_step_rings_whoever_is_on_call_when_the_step_rings() {
    let t0 = now();
    // handoffs at t0 - 90 min (petr), t0 - 30 min (ivan), t0 + 30 min (petr)
    let pbx = Pbx::new(
        &hourly(t0 - 5400),
        r#"{"page": {"steps": [{"schedules": ["rota"], "contacts": ["lead"]},
                                {"schedules": ["rota"], "after_seconds": 3600}]}}"#,
    );
    pbx.ok(
        0,
        &[
            "alert",
            "raise",
            "--id",
            "db1",
            "--text",
            "disk full",
            "--chain",
            "page",
        ],
    );
    let v = pbx.show("db1");
    assert_eq!(
        calls(&v),
        [
            c("lead", 0, 0, "scheduled", "-"),
            c("ivan", 0, 0, "scheduled", "rota"),
            // an hour later petr is on call: the step goes to him
            c("petr", 0, 1, "scheduled", "rota"),
        ]
    );
    assert_eq!(v["calls"][1]["why"], "layer hourly");
    let raised = v["calls"][0]["at"].as_str().unwrap().to_string();
    let petr = &v["calls"][2];
    let at = chrono::DateTime::parse_from_rfc3339(petr["at"].as_str().unwrap()).unwrap();
    let at0 = chrono::DateTime::parse_from_rfc3339(&raised).unwrap();
    assert_eq!((at - at0).num_seconds(), 3600);
    assert_eq!(
        pbx.outgoing(),
        [
            "alert-db1-e1-r0-s0-ivan.call",
            "alert-db1-e1-r0-s0-lead.call",
            "alert-db1-e1-r0-s1-petr.call"
        ]
    );
    assert_eq!(
        mtime(&pbx.path("spool/outgoing/alert-db1-e1-r0-s1-petr.call")),
        at.timestamp()
    );
}

#[test]
fn a_step_with_nobody_on_call_is_recorded_warned_and_the_chain_goes_on() {
    let t0 = now();
    // the layer starts in two hours: nobody now, no fallback
    let pbx = Pbx::new(
        &hourly(t0 + 7200),
        r#"{"page": {"steps": [{"schedules": ["rota"]},
                                {"contacts": ["lead"], "after_seconds": 60}]},
            "gap": {"steps": [{"schedules": ["rota"]}], "repeat": 1, "repeat_after_seconds": 60}}"#,
    );
    let o = pbx.run(&[
        "alert", "raise", "--id", "a1", "--text", "x", "--chain", "page", "--json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    // one call (the row with nobody on call is no call)
    let rep: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (rep["status"].as_str(), rep["calls"].as_u64()),
        (Some("raised"), Some(1))
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let warns: Vec<&str> = err.lines().filter(|l| l.contains("[WARN]")).collect();
    assert_eq!(warns.len(), 1, "{err}");
    assert!(
        warns[0].contains("nobody is on call for schedule rota"),
        "{err}"
    );
    let v = pbx.show("a1");
    assert_eq!(v["state"], "firing");
    assert_eq!(
        calls(&v),
        [
            c("", 0, 0, "nobody_on_call", "rota"),
            c("lead", 0, 1, "scheduled", "-")
        ]
    );
    assert_eq!(pbx.outgoing(), ["alert-a1-e1-r0-s1-lead.call"]);
    // a chain that can call nobody at all has run out at once: never
    // silently "firing"
    pbx.ok(
        0,
        &[
            "alert", "raise", "--id", "a2", "--text", "x", "--chain", "gap",
        ],
    );
    let v = pbx.show("a2");
    assert_eq!(v["state"], "unacknowledged");
    assert_eq!(calls(&v).len(), 2);
    // and `check` finds the gap (exit 1), and none once it is covered
    let chains_using = r#"{"page": {"steps": [{"schedules": ["rota"]}]}}"#;
    pbx.config(&hourly(t0 + 7200), chains_using);
    let gaps = pbx.ok(1, &["oncall", "check", "--days", "1", "--json"]);
    assert_eq!(gaps.as_array().unwrap().len(), 1);
    assert_eq!(gaps[0]["to"], z(t0 + 7200));
    pbx.config(&hourly(t0 - 7200), chains_using);
    assert_eq!(
        pbx.ok(0, &["oncall", "check", "--json"]),
        Value::Array(vec![])
    );
}

#[test]
fn an_override_re_plans_the_calls_to_come_under_new_file_names() {
    let t0 = now();
    let pbx = Pbx::new(
        &hourly(t0 - 5400),
        r#"{"page": {"steps": [{"schedules": ["rota"]},
                                {"schedules": ["rota"], "after_seconds": 600}]}}"#,
    );
    pbx.ok(
        0,
        &[
            "alert", "raise", "--id", "db1", "--text", "x", "--chain", "page",
        ],
    );
    assert_eq!(
        pbx.outgoing(),
        [
            "alert-db1-e1-r0-s0-ivan.call",
            "alert-db1-e1-r0-s1-ivan.call"
        ]
    );
    let due = mtime(&pbx.path("spool/outgoing/alert-db1-e1-r0-s1-ivan.call"));
    // olga covers from a minute from now: the step due in 10 minutes goes
    // to her, under a new name, at the same time; the call due now stays
    let from = z(t0 + 60);
    let to = z(t0 + 7200);
    let add = pbx.ok(
        0,
        &[
            "oncall",
            "override",
            "add",
            "--schedule",
            "rota",
            "--contact",
            "olga",
            "--from",
            &from,
            "--to",
            &to,
            "--json",
        ],
    );
    let id = add["override"]["id"].as_i64().unwrap();
    assert_eq!(add["replanned"].as_array().unwrap().len(), 1);
    assert_eq!(add["replanned"][0]["before"], serde_json::json!(["ivan"]));
    assert_eq!(add["replanned"][0]["after"], serde_json::json!(["olga"]));
    assert_eq!(
        pbx.outgoing(),
        [
            "alert-db1-e1-r0-s0-ivan.call",
            "alert-db1-e1-r0-s1-olga.v1.call"
        ]
    );
    assert_eq!(
        mtime(&pbx.path("spool/outgoing/alert-db1-e1-r0-s1-olga.v1.call")),
        due
    );
    let v = pbx.show("db1");
    assert_eq!(
        calls(&v),
        [
            c("ivan", 0, 0, "scheduled", "rota"),
            c("ivan", 0, 1, "replanned", "rota"),
            c("olga", 0, 1, "scheduled", "rota"),
        ]
    );
    assert_eq!(v["calls"][2]["why"], format!("override {id}"));
    // `now` at the override's time says so
    let n = pbx.ok(0, &["oncall", "now", "--at", &z(t0 + 120), "--json"]);
    assert_eq!(n[0]["contacts"], serde_json::json!(["olga"]));
    assert_eq!(n[0]["why"], "override");
    assert_eq!(n[0]["override_id"], id);
    assert_eq!(n[0]["since"], from);
    // removed: back to ivan, again under a new name
    let rm = pbx.ok(
        0,
        &["oncall", "override", "remove", &id.to_string(), "--json"],
    );
    assert_eq!(rm["replanned"][0]["after"], serde_json::json!(["ivan"]));
    assert_eq!(
        pbx.outgoing(),
        [
            "alert-db1-e1-r0-s0-ivan.call",
            "alert-db1-e1-r0-s1-ivan.v2.call"
        ]
    );
    pbx.ok(4, &["oncall", "override", "remove", &id.to_string()]);
    // an acked alert is not re-planned (nothing of it is pending)
    pbx.ok(0, &["alert", "ack", "db1"]);
    pbx.ok(
        0,
        &[
            "oncall",
            "override",
            "add",
            "--schedule",
            "rota",
            "--contact",
            "olga",
            "--from",
            &from,
            "--to",
            &to,
        ],
    );
    assert!(pbx.outgoing().is_empty(), "{:?}", pbx.outgoing());
    let r = pbx.ok(0, &["oncall", "replan", "--json"]);
    assert_eq!(r["replanned"], serde_json::json!([]));
}

#[test]
fn override_errors_name_the_field_and_change_nothing() {
    let pbx = Pbx::new(
        &format!(r#"{{"dba": {DBA}}}"#),
        r#"{"page": {"steps": [{"schedules": ["dba"]}]}}"#,
    );
    let add = |args: &[&str]| {
        let mut a = vec!["oncall", "override", "add"];
        a.extend_from_slice(args);
        let o = pbx.run(&a);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let base = [
        "--schedule",
        "dba",
        "--contact",
        "olga",
        "--from",
        "2026-12-01T10:00",
        "--to",
        "2026-12-02T10:00",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--schedule", "dbx"], "--schedule: no schedule \"dbx\""),
        (
            vec!["--contact", "nobody"],
            "contact: no contact \"nobody\"",
        ),
        (vec!["--to", "2026-12-01T10:00"], "to: must be after from"),
        (
            vec!["--to", "2027-12-03T10:00"],
            "to: an override lasts at most a year",
        ),
        (vec!["--from", "tomorrow"], "--from: \"tomorrow\""),
    ];
    for (change, want) in cases {
        let mut args: Vec<&str> = base.to_vec();
        for pair in change.chunks(2) {
            let i = args.iter().position(|a| *a == pair[0]).unwrap();
            args[i + 1] = pair[1];
        }
        let (code, err) = add(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{want}: {err}");
    }
    assert_eq!(
        pbx.ok(0, &["oncall", "override", "list", "--all", "--json"]),
        Value::Array(vec![])
    );
    // a year exactly is fine
    let (code, err) = add(&[&base[..6], &["--to", "2027-12-01T10:00"]].concat());
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn now_shifts_and_the_calendar_feeds_of_the_issue_sample() {
    let pbx = Pbx::new(
        &format!(r#"{{"dba": {DBA}}}"#),
        r#"{"page": {"steps": [{"schedules": ["dba"]}]}}"#,
    );
    // Tuesday 2026-12-01 21:00 Moscow: night2 (nights' second day)
    let n = pbx.ok(
        0,
        &[
            "oncall",
            "now",
            "--schedule",
            "dba",
            "--at",
            "2026-12-01T21:00",
            "--json",
        ],
    );
    assert_eq!(n[0]["contacts"], serde_json::json!(["night2"]));
    assert_eq!(n[0]["layer"], "nights");
    assert_eq!(n[0]["since"], "2026-12-01T17:00:00Z");
    assert_eq!(n[0]["until"], "2026-12-02T05:00:00Z");
    // Saturday night: no window, the weekly layer (ivan)
    let n = pbx.ok(0, &["oncall", "now", "--at", "2026-12-05T23:00", "--json"]);
    assert_eq!(n[0]["contacts"], serde_json::json!(["ivan"]));
    // before every start: the fallback
    let n = pbx.ok(
        0,
        &["oncall", "now", "--at", "2026-11-30T09:00+03:00", "--json"],
    );
    assert_eq!(
        (n[0]["contacts"][0].as_str(), n[0]["why"].as_str()),
        (Some("boss"), Some("fallback"))
    );
    // the week's shifts of ivan, merged across the Friday-Saturday night
    let s = pbx.ok(
        0,
        &[
            "oncall",
            "shifts",
            "--schedule",
            "dba",
            "--contact",
            "ivan",
            "--from",
            "2026-12-04T00:00",
            "--to",
            "2026-12-07T10:00",
            "--json",
        ],
    );
    let spans: Vec<(String, String)> = s
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["from"].as_str().unwrap().into(),
                p["to"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            (
                "2026-12-04T05:00:00Z".to_string(),
                "2026-12-04T17:00:00Z".to_string()
            ),
            // Friday 20:00 to Saturday 08:00 is nights'; from Saturday 08:00
            // ivan until the Monday handoff
            ("2026-12-05T05:00:00Z".into(), "2026-12-07T07:00:00Z".into()),
        ]
    );
    // an override shows in the shifts
    pbx.ok(
        0,
        &[
            "oncall",
            "override",
            "add",
            "--schedule",
            "dba",
            "--contact",
            "olga",
            "--from",
            "2026-12-05T12:00",
            "--to",
            "2026-12-05T18:00",
        ],
    );
    let s = pbx.ok(
        0,
        &[
            "oncall",
            "shifts",
            "--schedule",
            "dba",
            "--from",
            "2026-12-05T08:00",
            "--to",
            "2026-12-05T20:00",
            "--json",
        ],
    );
    let who: Vec<&str> = s
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["contacts"][0].as_str().unwrap())
        .collect();
    assert_eq!(who, ["ivan", "olga", "ivan"]);
    assert_eq!(s[1]["why"], "override");
    // the feeds parse with a real iCalendar parser
    for args in [["--schedule", "dba"], ["--contact", "ivan"]] {
        let o = pbx.run(&[&["oncall", "ical"][..], &args[..]].concat());
        assert_eq!(o.status.code(), Some(0));
        let cal = String::from_utf8(o.stdout).unwrap();
        check_ical(&cal);
    }
    let o = pbx.run(&["oncall", "ical"]);
    assert_eq!(o.status.code(), Some(2), "one of --schedule, --contact");
}

/// Parses a feed with python3-icalendar (Debian's): every event has a
/// UID, a DTSTART before its DTEND in UTC, a SUMMARY; the lines are CRLF
/// and at most 75 octets.
fn check_ical(cal: &str) {
    assert!(cal.starts_with("BEGIN:VCALENDAR\r\n"), "{cal}");
    for l in cal.split("\r\n") {
        assert!(l.len() <= 75, "{l:?}");
        assert!(!l.contains('\n'));
    }
    let script = r#"
import sys, icalendar
cal = icalendar.Calendar.from_ical(sys.stdin.buffer.read())
assert cal['VERSION'] == '2.0', cal['VERSION']
n = 0
uids = set()
for e in cal.walk('VEVENT'):
    s, t = e['DTSTART'].dt, e['DTEND'].dt
    assert s.tzinfo is not None and s.utcoffset().total_seconds() == 0, s
    assert s < t, (s, t)
    assert str(e['SUMMARY']).startswith('On call: ')
    uids.add(str(e['UID']))
    n += 1
assert len(uids) == n
print(n)
"#;
    let o = common::pipe(
        Command::new("/usr/bin/python3").args(["-c", script]),
        cal.as_bytes(),
    )
    .expect("python3 with python3-icalendar (apt install python3-icalendar)");
    assert!(
        o.status.success(),
        "the iCalendar parser refused the feed: {}\n{cal}",
        String::from_utf8_lossy(&o.stderr)
    );
    let n: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(n > 0, "{cal}");
}

struct Server {
    serve: common::Serve,
    port: u16,
}

impl Server {
    fn start(pbx: &Pbx) -> Server {
        let serve = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
        Server {
            port: serve.port,
            serve,
        }
    }

    fn req(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        let (st, b) = common::http(self.port, method, path, Some(TOKEN), body.as_bytes());
        (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    fn hup(&self) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.serve.child),
            rustix::process::Signal::HUP,
        )
        .unwrap();
    }

    /// Waits until the log has `n` lines holding `what`.
    fn wait_log(&self, what: &str, n: usize) -> String {
        let t = Instant::now();
        loop {
            let log = self.serve.log();
            if log.matches(what).count() >= n {
                return log;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "no {what:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_receiver_serves_oncall_overrides_and_feeds_and_reloads_on_sighup() {
    let t0 = now();
    let chains = r#"{"page": {"steps": [{"schedules": ["rota"]},
                                         {"schedules": ["rota"], "after_seconds": 600}]}}"#;
    let pbx = Pbx::new(&hourly(t0 - 5400), chains);
    let srv = Server::start(&pbx);
    let (st, v) = srv.req("GET", "/oncall", "");
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["on_call"][0]["schedule"], "rota");
    assert_eq!(v["on_call"][0]["contacts"], serde_json::json!(["ivan"]));
    let (st, v) = srv.req(
        "GET",
        &format!("/oncall/rota/shifts?from={}&to={}", z(t0), z(t0 + 7200)),
        "",
    );
    assert_eq!(st, 200, "{v}");
    let who: Vec<&str> = v["shifts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["contacts"][0].as_str().unwrap())
        .collect();
    assert_eq!(who, ["ivan", "petr", "ivan"]);
    // errors: the field named, the usual shape
    let (st, v) = srv.req("GET", "/oncall/rota/shifts?from=soon", "");
    assert_eq!((st, v["field"].as_str()), (400, Some("from")), "{v}");
    let (st, v) = srv.req("GET", "/oncall/nope/shifts", "");
    assert_eq!((st, v["field"].as_str()), (404, Some("schedule")), "{v}");
    let (st, v) = srv.req(
        "POST",
        "/oncall/rota/overrides",
        r#"{"contact": "olga", "from": "now"}"#,
    );
    assert_eq!((st, v["field"].as_str()), (400, Some("to")), "{v}");
    let (st, v) = srv.req(
        "POST",
        "/oncall/rota/overrides",
        &format!(
            r#"{{"contact": "zed", "from": "now", "to": "{}"}}"#,
            z(t0 + 3600)
        ),
    );
    assert_eq!((st, v["field"].as_str()), (400, Some("contact")), "{v}");
    // an alert, then an override over HTTP re-plans its next step
    pbx.ok(
        0,
        &[
            "alert", "raise", "--id", "h1", "--text", "x", "--chain", "page",
        ],
    );
    let (st, v) = srv.req(
        "POST",
        "/oncall/rota/overrides",
        &format!(
            r#"{{"contact": "olga", "from": "{}", "to": "{}"}}"#,
            z(t0 + 60),
            z(t0 + 7200)
        ),
    );
    assert_eq!(st, 201, "{v}");
    let id = v["override"]["id"].as_i64().unwrap();
    assert_eq!(v["replanned"][0]["after"], serde_json::json!(["olga"]));
    assert!(pbx
        .outgoing()
        .contains(&"alert-h1-e1-r0-s1-olga.v1.call".to_string()));
    let (st, v) = srv.req("GET", "/oncall/overrides", "");
    assert_eq!((st, v["overrides"][0]["id"].as_i64()), (200, Some(id)));
    // feeds: with the bearer token, or ?token= for calendar apps; never
    // without
    let (st, cal) = common::http(srv.port, "GET", "/oncall/rota.ics", Some(TOKEN), b"");
    assert_eq!(st, 200);
    check_ical(&cal);
    assert!(cal.contains("SUMMARY:On call: olga (rota)"), "{cal}");
    let (st, cal) = common::http(
        srv.port,
        "GET",
        &format!("/oncall/contacts/petr.ics?token={TOKEN}"),
        None,
        b"",
    );
    assert_eq!(st, 200);
    check_ical(&cal);
    assert_eq!(
        common::http(srv.port, "GET", "/oncall/rota.ics", None, b"").0,
        401
    );
    assert_eq!(
        common::http(srv.port, "GET", "/oncall/rota.ics?token=wrong", None, b"").0,
        401
    );
    assert_eq!(
        common::http(
            srv.port,
            "GET",
            &format!("/oncall?token={TOKEN}"),
            None,
            b""
        )
        .0,
        401
    );
    assert_eq!(srv.req("GET", "/oncall/nope.ics", "").0, 404);
    assert_eq!(srv.req("GET", "/oncall/contacts/nope.ics", "").0, 404);
    let (st, _) = srv.req("DELETE", &format!("/oncall/overrides/{id}"), "");
    assert_eq!(st, 200);
    assert_eq!(
        srv.req("DELETE", &format!("/oncall/overrides/{id}"), "").0,
        404
    );
    assert!(
        pbx.outgoing()
            .contains(&"alert-h1-e1-r0-s1-ivan.v2.call".to_string()),
        "{:?}",
        pbx.outgoing()
    );
    // the unit reloads with SIGHUP (systemctl reload)
    let unit = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/autodial-serve.service"
    ))
    .unwrap();
    assert!(
        unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"),
        "{unit}"
    );
    // SIGHUP with a broken file: refused in one line, the old one stays
    let good = fs::read_to_string(pbx.path("alerts.json")).unwrap();
    fs::write(
        pbx.path("alerts.json"),
        good.replace("\"1h\"", "\"1 hour\""),
    )
    .unwrap();
    srv.hup();
    let log = srv.wait_log("reload refused", 1);
    let refused: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("reload refused"))
        .collect();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0].contains("schedules.rota.layers[0].shift"),
        "{}",
        refused[0]
    );
    assert_eq!(
        srv.req("GET", "/oncall", "").1["on_call"][0]["contacts"],
        serde_json::json!(["ivan"])
    );
    // SIGHUP with a new rota (olga only): in force, and the step to come
    // re-planned to her
    pbx.config(
        &format!(
            r#"{{"rota": {{"time_zone": "UTC", "layers": [
                {{"name": "solo", "contacts": ["olga"], "shift": "1d", "start": "{}"}}]}}}}"#,
            z(t0 - 86_400)
        ),
        chains,
    );
    srv.hup();
    srv.wait_log("reloaded", 1);
    srv.wait_log("re-planned 1 step(s)", 1);
    assert_eq!(
        srv.req("GET", "/oncall", "").1["on_call"][0]["contacts"],
        serde_json::json!(["olga"])
    );
    assert!(
        pbx.outgoing()
            .contains(&"alert-h1-e1-r0-s1-olga.v3.call".to_string()),
        "{:?}",
        pbx.outgoing()
    );
}

/// The on-call line's AGI run on a captured env block: the variables it
/// sets (name -> value).
fn line(pbx: &Pbx, schedule: &str) -> (i32, BTreeMap<String, String>) {
    let out = common::alert_agi(
        &pbx.path("alerts.json"),
        pbx.dir.path(),
        "answered-ack",
        &["oncall", schedule],
        &"200 result=1\n".repeat(8),
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    let vars = said
        .lines()
        .filter_map(|l| l.strip_prefix("SET VARIABLE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    (out.status.code().unwrap(), vars)
}

#[test]
fn the_on_call_line_dials_who_is_on_call_then_the_next() {
    let t0 = now();
    let pbx = Pbx::new(
        &format!(
            r#"{{"rota": {{"time_zone": "UTC", "layers": [
                {{"name": "base", "contacts": ["petr"], "shift": "1w", "start": "{}"}}],
                "fallback": ["boss"]}},
              "later": {{"time_zone": "UTC", "layers": [
                {{"name": "base", "contacts": ["petr"], "shift": "1w", "start": "{}"}}]}}}}"#,
            z(t0 - 86_400),
            z(t0 + 86_400)
        ),
        r#"{"page": {"steps": [{"schedules": ["rota"]}]}}"#,
    );
    let (code, v) = line(&pbx, "rota");
    assert_eq!(code, 0);
    assert_eq!(v["ONCALL_STATUS"], "OK");
    assert_eq!(v["ONCALL_NAME"], "petr");
    assert_eq!(v["ONCALL_NUMBER"], "1002");
    assert_eq!(v["ONCALL_DIAL"], "Local/1002@alert-phones");
    assert_eq!(
        v["ONCALL_NEXT_DIAL"], "Local/1004@alert-phones",
        "the fallback next"
    );
    // olga covers: she is dialled first, the layer's petr next
    pbx.ok(
        0,
        &[
            "oncall",
            "override",
            "add",
            "--schedule",
            "rota",
            "--contact",
            "olga",
            "--from",
            &z(t0 - 60),
            "--to",
            &z(t0 + 3600),
        ],
    );
    let (_, v) = line(&pbx, "rota");
    assert_eq!(
        (v["ONCALL_NAME"].as_str(), v["ONCALL_NEXT_DIAL"].as_str()),
        ("olga", "Local/1002@alert-phones")
    );
    // nobody on call, and nobody next
    let (code, v) = line(&pbx, "later");
    assert_eq!(
        (
            code,
            v["ONCALL_STATUS"].as_str(),
            v["ONCALL_NEXT_DIAL"].as_str()
        ),
        (0, "NOBODY", "")
    );
    let (code, v) = line(&pbx, "nope");
    assert_eq!((code, v["ONCALL_STATUS"].as_str()), (1, "UNKNOWN_SCHEDULE"));
    let log = fs::read_to_string(pbx.path("autodial-alert.log")).unwrap();
    assert!(
        log.contains("on-call line rota: olga (override 1), next petr"),
        "{log}"
    );
}
