//! `autodial serve` over real HTTP: the real binary on a bound port, a
//! plain HTTP/1.1 client, the Alertmanager 0.25 requests captured in
//! fixtures/alertmanager-0.25/.

mod common;
use std::fs;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const AUTODIAL: &str = env!("CARGO_BIN_EXE_autodial");
const TOKEN: &str = "s3cr3t-token";

fn fixture(name: &str) -> Vec<u8> {
    fs::read(format!(
        "{}/fixtures/alertmanager-0.25/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

struct Server {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn new() -> Server {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("spool/outgoing")).unwrap();
        fs::create_dir_all(dir.path().join("spool/tmp")).unwrap();
        fs::write(
            dir.path().join("alerts.json"),
            format!(
                r#"{{"call": {{"channel": "Local/{{number}}@alert-phones"}},
                "contacts": {{"ivan": {{"number": "1001"}}, "petr": {{"number": "1002"}}}},
                "chains": {{"db": {{"steps": [{{"contacts": ["ivan"]}}, {{"contacts": ["petr"], "after_seconds": 120}}], "repeat": 1, "repeat_after_seconds": 300}},
                           "ops": {{"steps": [{{"contacts": ["petr"]}}]}}}},
                "routes": [{{"match": {{"team": "db"}}, "chain": "db"}}, {{"match": {{"team": "ops"}}, "chain": "ops"}}],
                "speech": {{"engine": "none"}},
                "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
                d = dir.path().display()
            ),
        )
        .unwrap();
        fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        let mut s = Server {
            dir,
            port: 0,
            child: None,
        };
        s.start();
        s
    }

    fn start(&mut self) {
        self.port = free_port();
        let child = Command::new(AUTODIAL)
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--config")
            .arg(self.dir.path().join("alerts.json"))
            .arg("--token-file")
            .arg(self.dir.path().join("token"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("serve.log"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn outgoing(&self) -> Vec<String> {
        common::names(&self.dir.path().join("spool/outgoing"))
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    fn req(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
        http(self.port, method, path, token, body)
    }

    fn post(&self, path: &str, body: &[u8]) -> (u16, Value) {
        let (st, b) = self.req("POST", path, Some(TOKEN), body);
        (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (st, b) = self.req("GET", path, Some(TOKEN), b"");
        (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

use common::http;

#[test]
fn alertmanager_groups_raise_dedupe_update_and_resolve() {
    let s = Server::new();
    let (st, v) = s.post("/alertmanager", &fixture("01-firing-group-two-alerts.json"));
    assert_eq!((st, v["status"].as_str()), (200, Some("raised")), "{v}");
    let db = v["id"].as_str().unwrap().to_string();
    assert!(db.starts_with("am-") && db.len() == 19);
    assert_eq!(v["calls"], 4);
    assert_eq!(s.outgoing().len(), 4);
    // the same notification again (a replica, a retry): nothing new
    let (st, v) = s.post("/alertmanager", &fixture("01-firing-group-two-alerts.json"));
    assert_eq!((st, v["status"].as_str()), (200, Some("duplicate")));
    assert_eq!(s.outgoing().len(), 4);
    let (_, v) = s.get(&format!("/alerts/{db}"));
    assert_eq!(v["text"], "2 alerts: Disk full on db1; Disk full on db2");
    assert_eq!(v["chain"], "db");
    // the other group, routed by its team to the ops chain
    let (st, v) = s.post(
        "/alertmanager",
        &fixture("02-firing-group-cyrillic-summary.json"),
    );
    assert_eq!(
        (st, v["status"].as_str(), v["calls"].as_u64()),
        (200, Some("raised"), Some(1))
    );
    let ops = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.get(&format!("/alerts/{ops}")).1["text"],
        "Гейтвей gw1 не отвечает"
    );
    // db1 resolved, db2 firing: the text changes, no new calls
    let (_, v) = s.post("/alertmanager", &fixture("03-one-of-two-resolved.json"));
    assert_eq!(v["status"], "updated");
    assert_eq!(
        s.get(&format!("/alerts/{db}")).1["text"],
        "Disk full on db2"
    );
    assert_eq!(s.outgoing().len(), 5);
    // the other group resolves: its pending call is removed
    let (_, v) = s.post("/alertmanager", &fixture("05-other-group-resolved.json"));
    assert_eq!(v["status"], "resolved");
    assert_eq!(s.outgoing().len(), 4);
    assert!(s.outgoing().iter().all(|f| f.contains(&db)));
    let (_, v) = s.post("/alertmanager", &fixture("04-group-resolved.json"));
    assert_eq!(v["status"], "resolved");
    assert!(s.outgoing().is_empty());
    let (_, v) = s.post("/alertmanager", &fixture("04-group-resolved.json"));
    assert_eq!(v["status"], "duplicate");
    // firing again after it resolved: a new episode
    let (_, v) = s.post("/alertmanager", &fixture("01-firing-group-two-alerts.json"));
    assert_eq!(
        (v["status"].as_str(), v["episode"].as_u64()),
        (Some("raised"), Some(2))
    );
    // one log line per request, with the id and outcome
    let log = s.log();
    assert!(
        log.contains(&format!("POST /alertmanager 200 id={db} outcome=duplicate")),
        "{log}"
    );
}

#[test]
fn grafana_generic_list_show_ack_health_and_metrics() {
    let s = Server::new();
    // An invented Grafana payload: Alertmanager's shape plus Grafana's fields.
    let mut g: Value = serde_json::from_slice(&fixture("01-firing-group-two-alerts.json")).unwrap();
    g["orgId"] = 1.into();
    g["title"] = "[FIRING:2] DiskFull".into();
    g["state"] = "alerting".into();
    g["message"] = "two disks".into();
    g["alerts"][0]["values"] = serde_json::json!({"B": 99.0});
    let (st, v) = s.post("/grafana", g.to_string().as_bytes());
    assert_eq!((st, v["status"].as_str()), (200, Some("raised")), "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("gf-"));
    // generic: chain named, or routed by labels; 422 when neither
    let (st, v) = s.post(
        "/alerts",
        br#"{"id": "zbx-42", "text": "Ping loss on gw2", "chain": "ops"}"#,
    );
    assert_eq!((st, v["status"].as_str()), (200, Some("raised")), "{v}");
    let (st, v) = s.post(
        "/alerts",
        br#"{"id": "zbx-43", "text": "x", "labels": {"team": "nobody"}}"#,
    );
    assert_eq!(st, 422, "{v}");
    assert_eq!(s.get("/alerts/zbx-43").0, 404);
    // list and show: the JSON of `autodial alert list/show --json`
    let (st, v) = s.get("/alerts");
    assert_eq!(st, 200);
    assert_eq!(v.as_array().unwrap().len(), 2);
    let (_, v) = s.get("/alerts/zbx-42");
    assert_eq!(v["calls"][0]["outcome"], "scheduled");
    // ack over HTTP
    let (st, v) = s.post("/alerts/zbx-42/ack", br#"{"by": "chat-bot"}"#);
    assert_eq!((st, v["status"].as_str()), (200, Some("acked")), "{v}");
    let (_, v) = s.get("/alerts/zbx-42");
    assert_eq!(
        (
            v["state"].as_str(),
            v["acked_by"].as_str(),
            v["acked_via"].as_str()
        ),
        (Some("acked"), Some("chat-bot"), Some("http"))
    );
    assert_eq!(s.post("/alerts/zbx-42/ack", b"").1["status"], "duplicate");
    assert_eq!(s.post("/alerts/nope/ack", b"").0, 404);
    // generic resolve
    let (_, v) = s.post("/alerts", br#"{"id": "zbx-42", "status": "resolved"}"#);
    assert_eq!(v["status"], "resolved");
    let (_, v) = s.post(
        "/alerts",
        br#"{"id": "never-raised", "status": "resolved"}"#,
    );
    assert_eq!(v["status"], "unknown");
    // health: 200, then 503 naming the spool when it cannot be written
    let (st, _) = s.req("GET", "/healthz", None, b"");
    assert_eq!(st, 200);
    fs::rename(
        s.dir.path().join("spool/outgoing"),
        s.dir.path().join("spool/away"),
    )
    .unwrap();
    let (st, body) = s.req("GET", "/healthz", None, b"");
    assert_eq!(st, 503);
    assert!(body.contains("outgoing"), "{body}");
    fs::rename(
        s.dir.path().join("spool/away"),
        s.dir.path().join("spool/outgoing"),
    )
    .unwrap();
    // metrics: counts from the database, requests by route and status
    let (st, m) = s.req("GET", "/metrics", Some(TOKEN), b"");
    assert_eq!(st, 200);
    for line in [
        "autodial_alerts_raised_total 2",
        "autodial_alerts_acknowledged_total 1",
        "autodial_alerts_resolved_total 1",
        "autodial_calls{outcome=\"cancelled\"}",
        "autodial_calls_planned_total ",
        "autodial_http_requests_total{endpoint=\"/alerts/{id}/ack\",status=\"404\"} 1",
        "autodial_http_requests_total{endpoint=\"/alerts\",status=\"422\"} 1",
        "autodial_ack_seconds_count 1",
        "# TYPE autodial_ack_seconds histogram",
    ] {
        assert!(m.contains(line), "{line}\n{m}");
    }
}

#[test]
fn auth_limits_and_hostile_payloads_write_nothing() {
    let s = Server::new();
    // no token, a wrong one, a longer one: 401; health needs none
    for t in [None, Some("wrong"), Some("s3cr3t-token-and-more"), Some("")] {
        let (st, _) = s.req(
            "POST",
            "/alerts",
            t,
            br#"{"id": "a", "text": "x", "chain": "ops"}"#,
        );
        assert_eq!(st, 401, "{t:?}");
        assert_eq!(s.req("GET", "/alerts", t, b"").0, 401);
        assert_eq!(s.req("GET", "/metrics", t, b"").0, 401);
    }
    assert_eq!(s.req("GET", "/healthz", None, b"").0, 200);
    // over 1 MiB: 413
    let mut big = br#"{"id": "big", "text": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', (1 << 20) + 10));
    big.extend_from_slice(br#"", "chain": "ops"}"#);
    assert_eq!(s.post("/alerts", &big).0, 413);
    // under 1 MiB but 20,000 labels: a real notification is never refused
    // for its size; the labels are cut to the bounds and marked cut
    let labels: Vec<String> = (0..20_000).map(|i| format!("\"k{i}\": \"v\"")).collect();
    let body = format!(
        r#"{{"id": "many", "text": "x", "chain": "ops", "labels": {{{}}}}}"#,
        labels.join(",")
    );
    assert!(body.len() < 1 << 20);
    let (st, v) = s.post("/alerts", body.as_bytes());
    assert_eq!((st, v["status"].as_str()), (200, Some("raised")), "{v}");
    let (_, v) = s.get("/alerts/many");
    assert_eq!(v["labels"].as_object().unwrap().len(), 64);
    assert_eq!(v["labels_cut"], 20_000 - 64);
    assert_eq!(
        s.post("/alerts", br#"{"id": "many", "status": "resolved"}"#)
            .0,
        200
    );
    // wrong types and bad JSON: 400 with the field
    for (body, field) in [
        (&br#"{"id": 5, "text": "x"}"#[..], Some("id")),
        (
            br#"{"id": "a", "text": "x", "labels": {"team": ["db"]}}"#,
            Some("labels.team"),
        ),
        (br#"{"id": "a", "text": "x""#, None),
        (br#"[]"#, None),
        (br#"[{"id": "arr", "text": "x", "chain": "ops"}]"#, None),
        (br#" ["arr", "x"]"#, None),
        (
            br#"{"id": "a", "text": "x", "status": "exploded"}"#,
            Some("status"),
        ),
        (
            br#"{"id": "../../etc/passwd", "text": "x", "chain": "ops"}"#,
            Some("id"),
        ),
        (
            br#"{"id": "a\u0000b", "text": "x", "chain": "ops"}"#,
            Some("id"),
        ),
        (
            br#"{"id": "a", "text": "x", "chain": "../ops"}"#,
            Some("chain"),
        ),
    ] {
        let (st, v) = s.post("/alerts", body);
        assert_eq!(st, 400, "{}: {v}", String::from_utf8_lossy(body));
        assert_eq!(
            v["field"].as_str(),
            field,
            "{}: {v}",
            String::from_utf8_lossy(body)
        );
    }
    let (st, v) = s.post(
        "/alertmanager",
        br#"{"version": "4", "status": "firing", "alerts": []}"#,
    );
    assert_eq!((st, v["field"].as_str()), (400, Some("groupKey")), "{v}");
    let (st, v) = s.post(
        "/alertmanager",
        br#"{"version": "3", "groupKey": "x", "status": "firing"}"#,
    );
    assert_eq!((st, v["field"].as_str()), (400, Some("version")), "{v}");
    assert!(
        s.outgoing().is_empty(),
        "nothing written for a rejected request"
    );
    assert!(!s
        .dir
        .path()
        .join("spool/tmp")
        .read_dir()
        .unwrap()
        .any(|_| true));
    // a group key that would be an unsafe path, unicode and control bytes
    // in the text: the id is derived, the text kept as data
    let mut p: Value = serde_json::from_slice(&fixture("01-firing-group-two-alerts.json")).unwrap();
    p["groupKey"] = "../../etc/passwd\n;rm -rf /".into();
    p["alerts"][0]["annotations"]["summary"] = "Диск \u{202e}\u{0007} $(reboot)".into();
    let (st, v) = s.post("/alertmanager", p.to_string().as_bytes());
    assert_eq!(st, 200, "{v}");
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("am-") && id[3..].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(s
        .outgoing()
        .iter()
        .all(|f| f.starts_with(&format!("alert-{id}-"))));
    // the log escapes what it shows
    assert!(!s.log().contains('\u{202e}'));
}

#[test]
fn a_non_loopback_address_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(AUTODIAL)
        .args(["serve", "--listen", "0.0.0.0:1", "--config"])
        .arg(dir.path().join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--insecure-no-auth"));
}

#[test]
fn retries_and_duplicates_from_every_replica_call_once() {
    let s = std::sync::Arc::new(Server::new());
    let body = fixture("01-firing-group-two-alerts.json");
    let hs: Vec<_> = (0..24)
        .map(|_| {
            let (s, body) = (s.clone(), body.clone());
            std::thread::spawn(move || s.post("/alertmanager", &body))
        })
        .collect();
    let r: Vec<(u16, Value)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(r.iter().all(|(st, _)| *st == 200), "{r:?}");
    let raised = r.iter().filter(|(_, v)| v["status"] == "raised").count();
    let dup = r.iter().filter(|(_, v)| v["status"] == "duplicate").count();
    assert_eq!((raised, dup), (1, 23));
    assert_eq!(s.outgoing().len(), 4, "exactly one set of calls");
}

#[test]
fn sigterm_stops_the_server_with_exit_0() {
    let mut s = Server::new();
    let child = s.child.as_mut().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.log().contains("stopping"));
    s.child = None;
}

#[test]
fn kill_9_during_a_burst_loses_nothing_answered_and_calls_nobody_twice() {
    let mut s = Server::new();
    let template: Value =
        serde_json::from_slice(&fixture("01-firing-group-two-alerts.json")).unwrap();
    let port = s.port;
    let bodies: Vec<Vec<u8>> = (0..400)
        .map(|i| {
            let mut p = template.clone();
            p["groupKey"] = format!("{{}}:{{group=\"{i}\"}}").into();
            p.to_string().into_bytes()
        })
        .collect();
    let bodies = std::sync::Arc::new(bodies);
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hs: Vec<_> = (0..4)
        .map(|w| {
            let (bodies, answered) = (bodies.clone(), answered.clone());
            std::thread::spawn(move || {
                for i in (w..bodies.len()).step_by(4) {
                    let (st, b) = http(port, "POST", "/alertmanager", Some(TOKEN), &bodies[i]);
                    if st == 0 {
                        break; // killed: the connection is refused
                    }
                    if st == 200 {
                        let v: Value = serde_json::from_str(&b).unwrap();
                        answered
                            .lock()
                            .unwrap()
                            .push((i, v["id"].as_str().unwrap().to_string()));
                    }
                }
            })
        })
        .collect();
    // kill it in the middle of the burst: once some were answered
    let t = Instant::now();
    while answered.lock().unwrap().len() < 40 && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let child = s.child.as_mut().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    for h in hs {
        h.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        !answered.is_empty() && answered.len() < 400,
        "{} answered",
        answered.len()
    );
    // restarted, the receiver completes what was cut short
    s.start();
    let files = s.outgoing();
    for (_, id) in &answered {
        let n = files
            .iter()
            .filter(|f| f.starts_with(&format!("alert-{id}-")))
            .count();
        assert_eq!(n, 4, "{id}: every call of an answered alert is queued");
    }
    // the senders retry everything: what was answered is a duplicate, the
    // rest is raised once; nobody is called twice
    for (i, b) in bodies.iter().enumerate() {
        let (st, v) = s.post("/alertmanager", b);
        assert_eq!(st, 200);
        if answered.iter().any(|(j, _)| *j == i) {
            assert_eq!(v["status"], "duplicate", "{i}");
        }
    }
    let files = s.outgoing();
    assert_eq!(files.len(), 400 * 4, "one set of calls per group");
}
