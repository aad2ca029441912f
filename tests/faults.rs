//! The pager's promise under ordinary faults (issue 16): no page lost,
//! nothing stalls, nobody called after a resolve. Each test aims at one
//! reproduction: a staging directory gone for a moment, an `outgoing/`
//! that cannot be written, a publish slowed by `strace` while a resolve
//! comes in, a new database created by many processes at once, idle and
//! trickling connections, slow, forking and lying speech engines, a
//! root-owned spool, metrics read by promtool and Prometheus' own parser.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const AUTODIAL: &str = env!("CARGO_BIN_EXE_autodial");
const TOKEN: &str = "t0ken";

/// A spool, a state directory and a config; `speech` is the speech
/// member's JSON. Chain `db`: ivan now, petr 120 s later, one repeat round
/// (4 calls); `one`: ivan alone.
struct Pbx {
    dir: tempfile::TempDir,
}

impl Pbx {
    fn new(speech: &str) -> Pbx {
        let dir = tempfile::tempdir().unwrap();
        for d in ["spool/outgoing", "spool/tmp"] {
            fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let pbx = Pbx { dir };
        pbx.config(speech);
        pbx
    }

    fn config(&self, speech: &str) {
        fs::write(
            self.path("alerts.json"),
            format!(
                r#"{{"call": {{"channel": "Local/{{number}}@alert-phones"}},
                "contacts": {{"ivan": {{"number": "1001"}}, "petr": {{"number": "1002"}}}},
                "chains": {{"db": {{"steps": [{{"contacts": ["ivan"]}}, {{"contacts": ["petr"], "after_seconds": 120}}],
                                   "repeat": 1, "repeat_after_seconds": 300}},
                           "one": {{"steps": [{{"contacts": ["ivan"]}}]}}}},
                "routes": [{{"chain": "db"}}],
                "speech": {speech},
                "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
                d = self.dir.path().display()
            ),
        )
        .unwrap();
        fs::write(self.path("token"), TOKEN).unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn outgoing(&self) -> Vec<String> {
        common::names(&self.path("spool/outgoing"))
    }

    fn outgoing_of(&self, id: &str) -> Vec<String> {
        let prefix = format!("alert-{id}-");
        self.outgoing()
            .into_iter()
            .filter(|f| f.starts_with(&prefix))
            .collect()
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(AUTODIAL);
        c.env("AUTODIAL_ALERTS", self.path("alerts.json"))
            .arg("alert")
            .args(args);
        c
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn show(&self, id: &str) -> Value {
        let o = self.cli(&["show", id, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// Hides `spool/<d>` (renamed away) and gives it back.
    fn hide(&self, d: &str) {
        fs::rename(
            self.path(&format!("spool/{d}")),
            self.path(&format!("spool/{d}.away")),
        )
        .unwrap();
    }
    fn unhide(&self, d: &str) {
        fs::rename(
            self.path(&format!("spool/{d}.away")),
            self.path(&format!("spool/{d}")),
        )
        .unwrap();
    }

    fn serve(&self) -> Server {
        Server::start(self, |_| {})
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Server {
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(pbx: &Pbx, tweak: impl FnOnce(&mut Command)) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = pbx.path("serve.log");
        let mut c = Command::new(AUTODIAL);
        c.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(pbx.path("alerts.json"))
            .arg("--token-file")
            .arg(pbx.path("token"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap(),
            ));
        tweak(&mut c);
        let child = c.spawn().unwrap();
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { port, child, log }
    }

    fn req(&self, method: &str, path: &str, token: bool, body: &[u8]) -> (u16, String) {
        http(self.port, method, path, token.then_some(TOKEN), body)
    }

    fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let (st, b) = self.req("POST", path, true, body.as_bytes());
        (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

use common::http;

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NO_SPEECH: &str = r#"{"engine": "none"}"#;

fn raise_body(id: &str, text: &str) -> String {
    format!(r#"{{"id": "{id}", "text": "{text}", "chain": "db"}}"#)
}

// 1. A failed publish is never answered "duplicate".

#[test]
fn a_failed_publish_is_retried_by_the_sender_and_never_called_duplicate() {
    let pbx = Pbx::new(NO_SPEECH);
    let s = pbx.serve();
    // the staging directory is gone for a moment: 500, the plan is stored
    pbx.hide("tmp");
    let (st, v) = s.post("/alerts", &raise_body("disk", "Disk full"));
    assert_eq!(st, 500, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("cannot publish"),
        "{v}"
    );
    // the sender's retry while it is still gone: 500 again, never duplicate
    let (st, v) = s.post("/alerts", &raise_body("disk", "Disk full"));
    assert_eq!(st, 500, "{v}");
    assert!(pbx.outgoing().is_empty());
    // it is back: the retry publishes every call and only then answers 2xx
    pbx.unhide("tmp");
    let (st, v) = s.post("/alerts", &raise_body("disk", "Disk full"));
    assert_eq!((st, v["status"].as_str()), (200, Some("duplicate")), "{v}");
    assert_eq!(pbx.outgoing_of("disk").len(), 4);
    // an ack or resolve of the id settles it too (CLI, same ledger)
    pbx.hide("tmp");
    assert_eq!(s.post("/alerts", &raise_body("cpu", "CPU hot")).0, 500);
    pbx.unhide("tmp");
    let o = pbx.cli(&["raise", "--id", "cpu", "--text", "CPU hot", "--chain", "db"]);
    assert_eq!(o.status.code(), Some(3), "{}", err(&o));
    assert_eq!(pbx.outgoing_of("cpu").len(), 4);
}

#[test]
fn the_receiver_settles_an_unpublished_plan_on_its_own_and_health_says_so_after_30_s() {
    let pbx = Pbx::new(NO_SPEECH);
    let s = pbx.serve();
    // tmp/ swapped for a symbolic link (refused: never followed), which a
    // writability check cannot see: only the debt's age can tell
    pbx.hide("tmp");
    std::os::unix::fs::symlink(pbx.path("spool/tmp.away"), pbx.path("spool/tmp")).unwrap();
    let raised = Instant::now();
    // Alertmanager's one try (it will not retry a 500 within this test)
    assert_eq!(
        s.post("/alerts", &raise_body("lost", "Nobody retries")).0,
        500
    );
    // healthy until the debt is 30 s old, then 503 naming it
    let mut first_503 = None;
    while raised.elapsed() < Duration::from_secs(40) {
        let (st, b) = s.req("GET", "/healthz", false, b"");
        if st == 503 {
            assert!(b.contains("lost"), "{b}");
            first_503 = Some(raised.elapsed());
            break;
        }
        assert_eq!(st, 200, "{b}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let at = first_503.expect("healthz never said 503");
    assert!(at >= Duration::from_secs(29), "503 after {at:?}");
    // back: the receiver publishes without any request, health recovers
    fs::remove_file(pbx.path("spool/tmp")).unwrap();
    pbx.unhide("tmp");
    wait_for("the retry loop publishes", Duration::from_secs(8), || {
        pbx.outgoing_of("lost").len() == 4
    });
    wait_for("healthy again", Duration::from_secs(3), || {
        s.req("GET", "/healthz", false, b"").0 == 200
    });
    // published over 30 s late: the plan moved to now, escalation kept
    // (ivan now, petr 120 s after him), not everyone at once
    let mtime = |f: &str| {
        fs::metadata(pbx.path(&format!("spool/outgoing/{f}")))
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let files = pbx.outgoing_of("lost");
    let first = files.iter().find(|f| f.contains("-r0-s0-")).unwrap();
    let second = files.iter().find(|f| f.contains("-r0-s1-")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (now - mtime(first)).abs() <= 10,
        "first call at {} now {now}",
        mtime(first)
    );
    assert_eq!(mtime(second) - mtime(first), 120);
    let shown = pbx.show("lost");
    let at0 = shown["calls"][0]["at"].as_str().unwrap().to_string();
    let raised = shown["raised_at"].as_str().unwrap().to_string();
    assert!(
        at0 > raised,
        "the stored plan moved too: {at0} after {raised}"
    );
    assert!(s.log().contains("settled what the spool owed 1 alert(s)"));
}

// 2. Never refuse a real notification for its size.

#[test]
fn alertmanager_and_grafana_groups_with_big_labels_are_accepted_and_cut() {
    let pbx = Pbx::new(NO_SPEECH);
    let s = pbx.serve();
    let mut p: Value = serde_json::from_slice(
        &fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/alertmanager-0.25/01-firing-group-two-alerts.json"
        ))
        .unwrap(),
    )
    .unwrap();
    // a 300-byte URL label and 65 labels in all
    p["commonLabels"]["runbook_url"] = format!("https://wiki.example/{}", "r".repeat(280)).into();
    for i in 0..63 {
        p["commonLabels"][format!("extra{i:02}")] = "x".into();
    }
    assert!(p["commonLabels"].as_object().unwrap().len() >= 65);
    for path in ["/alertmanager", "/grafana"] {
        let (st, v) = s.post(path, &p.to_string());
        assert_eq!(
            (st, v["status"].as_str()),
            (200, Some("raised")),
            "{path}: {v}"
        );
        let id = v["id"].as_str().unwrap().to_string();
        let (_, shown) = s.req("GET", &format!("/alerts/{id}"), true, b"");
        let shown: Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(shown["labels"].as_object().unwrap().len(), 64);
        assert!(shown["labels_cut"].as_u64().unwrap() >= 2, "{shown}");
        assert!(shown["labels"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.as_str().unwrap().len() <= 256));
        assert_eq!(pbx.outgoing_of(&id).len(), 4);
        // the CLI says it too
        let o = pbx.cli(&["show", &id]);
        assert!(String::from_utf8_lossy(&o.stdout).contains("label(s) cut"));
    }
}

// 3. Idle and slow connections.

fn raise_nofile() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        },
    );
}

#[test]
fn two_thousand_idle_and_trickling_connections_leave_the_receiver_answering() {
    raise_nofile();
    let pbx = Pbx::new(NO_SPEECH);
    // started as systemd starts it by default: soft limit 1024
    let s = Server::start(&pbx, |c| {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; the struct is on the stack.
        unsafe {
            c.pre_exec(|| {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim.rlim_cur = 1024;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
                Ok(())
            });
        }
    });
    let mut held = Vec::new();
    for i in 0..2000 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        if i % 2 == 1 {
            // headers that never finish (a byte now and then)
            c.write_all(b"POST /alerts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
        }
        held.push(c);
    }
    let opened = Instant::now();
    for n in 0..5 {
        let t = Instant::now();
        let (st, _) = s.req("GET", "/healthz", false, b"");
        assert_eq!(st, 200);
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "healthz took {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        let (st, v) = s.post("/alerts", &raise_body(&format!("busy{n}"), "x"));
        assert_eq!(st, 200, "{v}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "raise took {:?}",
            t.elapsed()
        );
        for c in held.iter_mut().skip(1).step_by(2).take(50) {
            let _ = c.write_all(b"y");
        }
    }
    // 10 s without complete headers: every one of them is closed
    std::thread::sleep(Duration::from_secs(11).saturating_sub(opened.elapsed()));
    let mut open = 0;
    for c in held.iter_mut() {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 512];
        // EOF or a reset: closed by the server; a read timeout: still open
        if let Err(e) = c.read(&mut b) {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                open += 1;
            }
        }
    }
    assert_eq!(open, 0, "connections still open after the header timeout");
    // and a kept-alive connection left idle is closed as well
    let mut k = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    k.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    k.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut all = Vec::new();
    let _ = k.read_to_end(&mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    let idle = t.elapsed();
    assert!(
        idle >= Duration::from_secs(9) && idle < Duration::from_secs(15),
        "closed after {idle:?}"
    );
}

// 4. A new database under concurrency.

#[test]
fn many_processes_creating_a_new_database_at_once_all_succeed() {
    for round in 0..4 {
        let pbx = Pbx::new(NO_SPEECH);
        let server = (round % 2 == 0).then(|| pbx.serve());
        let kids: Vec<Child> = (0..8)
            .map(|i| {
                pbx.cmd(&[
                    "raise",
                    "--id",
                    &format!("r{i}"),
                    "--text",
                    "x",
                    "--chain",
                    "one",
                ])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        for k in kids {
            let o = k.wait_with_output().unwrap();
            assert_eq!(o.status.code(), Some(0), "round {round}: {}", err(&o));
        }
        assert_eq!(pbx.outgoing().len(), 8);
        if let Some(s) = server {
            assert_eq!(s.req("GET", "/healthz", false, b"").0, 200, "{}", s.log());
        }
    }
}

// 5. Nobody called after a resolve whose removals failed.

#[test]
fn removals_that_failed_are_owed_and_finished_by_the_next_attempt() {
    let pbx = Pbx::new(NO_SPEECH);
    let o = pbx.cli(&["raise", "--id", "db1", "--text", "x", "--chain", "db"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(pbx.outgoing_of("db1").len(), 4);
    // outgoing/ cannot be used for a moment: the resolve fails (exit 1)
    pbx.hide("outgoing");
    let o = pbx.cli(&["resolve", "db1"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("cannot remove"), "{}", err(&o));
    pbx.unhide("outgoing");
    assert_eq!(pbx.outgoing_of("db1").len(), 4, "the files are still there");
    // the retry says the state was already resolved, and removes them all
    let o = pbx.cli(&["resolve", "db1", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["status"], "duplicate");
    assert!(pbx.outgoing_of("db1").is_empty());

    // the receiver: a failed ack is a 500; its retry loop removes the rest
    let s = pbx.serve();
    assert_eq!(s.post("/alerts", &raise_body("db2", "x")).0, 200);
    pbx.hide("outgoing");
    let (st, v) = s.post("/alerts/db2/ack", "{}");
    assert_eq!(st, 500, "{v}");
    let (st, v) = s.post("/alerts/db2/ack", "{}");
    assert_eq!(st, 500, "a retry while it still fails is no duplicate: {v}");
    pbx.unhide("outgoing");
    wait_for(
        "the retry loop removes them",
        Duration::from_secs(8),
        || pbx.outgoing_of("db2").is_empty(),
    );
    assert_eq!(pbx.show("db2")["state"], "acked");
}

// 6. A resolve committed while a raise is still publishing wins.

fn strace() -> &'static str {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "strace is needed (apt-get install strace; .ci/run installs it)"
    );
    "strace"
}

#[test]
fn a_resolve_during_a_slowed_publish_leaves_no_call_file() {
    let tracer = strace();
    for (round, ack) in [(0, false), (1, true), (2, false)] {
        let pbx = Pbx::new(NO_SPEECH);
        let o = pbx.cli(&["list"]); // the database exists before the race
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        let id = format!("slow{round}");
        // every rename into outgoing/ takes 300 ms: 4 calls, 1.2 s
        let mut raise = Command::new(tracer)
            .args([
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=renameat2,rename,renameat,linkat",
            ])
            .args([
                "-e",
                "inject=renameat2,rename,renameat,linkat:delay_enter=300000",
            ])
            .arg(AUTODIAL)
            .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
            .args([
                "alert", "raise", "--id", &id, "--text", "x", "--chain", "db",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the plan is committed and the publish under way
        wait_for("the raise publishes", Duration::from_secs(20), || {
            pbx.show_opt(&id).is_some()
        });
        std::thread::sleep(Duration::from_millis(350));
        // another command starting now must not take the live raise for a
        // dead one (and publish its files again)
        let lister = pbx.cmd(&["list"]).stderr(Stdio::piped()).spawn().unwrap();
        let verb = if ack { "ack" } else { "resolve" };
        let stop = pbx.cli(&[verb, &id]);
        assert_eq!(stop.status.code(), Some(0), "{}", err(&stop));
        let r = raise.wait().unwrap();
        let l = lister.wait_with_output().unwrap();
        assert_eq!(l.status.code(), Some(0), "{}", err(&l));
        assert!(r.code() == Some(0) || r.code() == Some(1), "{r:?}");
        assert!(
            pbx.outgoing_of(&id).is_empty(),
            "round {round}: files left after the {}: {:?}",
            if ack { "ack" } else { "resolve" },
            pbx.outgoing_of(&id)
        );
        let v = pbx.show(&id);
        assert_eq!(v["state"], if ack { "acked" } else { "resolved" });
        assert!(v["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["outcome"] == "cancelled"));
    }
}

impl Pbx {
    fn show_opt(&self, id: &str) -> Option<Value> {
        let o = self.cli(&["show", id, "--json"]);
        (o.status.code() == Some(0)).then(|| serde_json::from_slice(&o.stdout).unwrap())
    }
}

// 7. Speech never holds anything up.

fn engine(cmd: &[&str], timeout: u32) -> String {
    format!(
        r#"{{"engine": "command", "command": {}, "timeout_seconds": {timeout}}}"#,
        serde_json::to_string(cmd).unwrap()
    )
}

/// A receiver whose speech engine takes 60 s (its timeout).
fn slow_engine() -> (Pbx, Server) {
    let pbx = Pbx::new(&engine(&["sh", "-c", "exec sleep 60", "{wav}"], 60));
    let s = pbx.serve();
    (pbx, s)
}

/// POSTs a raise of `id` from a thread; its (status, body) at the join.
fn raise_in_background(s: &Server, id: &str) -> std::thread::JoinHandle<(u16, String)> {
    let (port, body) = (s.port, raise_body(id, "x"));
    std::thread::spawn(move || http(port, "POST", "/alerts", Some(TOKEN), body.as_bytes()))
}

#[test]
fn a_slow_engine_never_holds_up_health_metrics_or_other_alerts() {
    let (pbx, s) = slow_engine();
    let t = Instant::now();
    let slow = raise_in_background(&s, "slow");
    std::thread::sleep(Duration::from_millis(300));
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        for path in ["/healthz", "/metrics", "/alerts"] {
            let q = Instant::now();
            assert_eq!(s.req("GET", path, true, b"").0, 200);
            worst = worst.max(q.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(worst < Duration::from_millis(500), "worst {worst:?}");
    // the slow raise: the budget runs out, the alert is raised with the
    // fallback prompt and answered 2xx (never 408)
    let (st, body) = slow.join().unwrap();
    let took = t.elapsed();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((st, v["status"].as_str()), (200, Some("raised")), "{v}");
    assert!(
        v["speech_error"].as_str().unwrap().contains("budget"),
        "{v}"
    );
    assert!(took < Duration::from_secs(25), "{took:?}");
    assert_eq!(pbx.outgoing_of("slow").len(), 4);
}

#[test]
fn sigterm_during_a_render_exits_within_10_s_with_the_alert_raised() {
    let (pbx, mut s) = slow_engine();
    let slow = raise_in_background(&s, "term");
    std::thread::sleep(Duration::from_millis(700));
    let pid = rustix::process::Pid::from_child(&s.child);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let t = Instant::now();
    let code = loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            break st.code();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(0));
    let (st, body) = slow.join().unwrap();
    assert_eq!(st, 200, "{body}");
    assert_eq!(pbx.outgoing_of("term").len(), 4);
}

// 8-10. Engines that fork, lie or are fed phonemes.

#[test]
fn an_engine_whose_child_holds_its_pipes_costs_no_more_than_its_timeout() {
    let pbx = Pbx::new(&engine(&["sh", "-c", "sleep 20 & exit 1", "{wav}"], 2));
    let t = Instant::now();
    let o = pbx.cli(&["raise", "--id", "fork", "--text", "x", "--chain", "one"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(err(&o).contains("failed"), "{}", err(&o));
    // and one that forks a child holding them and exits 0 without a file
    pbx.config(&engine(&["sh", "-c", "sleep 20 & exit 0", "{wav}"], 2));
    let t = Instant::now();
    let o = pbx.cli(&["raise", "--id", "fork2", "--text", "x", "--chain", "one"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(pbx.outgoing_of("fork2").len(), 1);
}

#[test]
fn a_wav_header_claiming_1_hz_falls_back_to_the_prompt_and_loses_nothing() {
    let pbx = Pbx::new(NO_SPEECH);
    let forged = pbx.path("forged.wav");
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&36u32.to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    for v in [1u16, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [1u32, 2] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [2u16, 16] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(b"data");
    b.extend_from_slice(&0x7fff_fff0u32.to_le_bytes());
    b.extend_from_slice(&[0; 256]);
    fs::write(&forged, &b).unwrap();
    let f = forged.to_string_lossy().into_owned();
    pbx.config(&engine(&["cp", &f, "{wav}"], 5));
    let o = pbx.cli(&[
        "raise", "--id", "liar", "--text", "x", "--chain", "db", "--json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        j["speech_error"]
            .as_str()
            .unwrap()
            .contains("sample rate 1 Hz"),
        "{j}"
    );
    assert_eq!(pbx.outgoing_of("liar").len(), 4);
}

#[test]
fn text_reaches_the_engine_as_plain_text_only() {
    let pbx = Pbx::new(NO_SPEECH);
    let said = pbx.path("said.txt");
    let tone = pbx.path("tone.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&tone, spec).unwrap();
    for _ in 0..800 {
        w.write_sample(0i16).unwrap();
    }
    w.finalize().unwrap();
    let script = format!(
        "cat >> '{}' && cp '{}' \"$0\"",
        said.display(),
        tone.display()
    );
    pbx.config(&engine(&["sh", "-c", &script, "{wav}"], 5));
    let o = pbx.cli(&[
        "raise",
        "--id",
        "ph",
        "--text",
        "Disk [[f'Ul]] on db1",
        "--chain",
        "one",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let text = fs::read_to_string(&said).unwrap();
    assert!(text.contains("Disk ((f'Ul)) on db1. Press 1"), "{text}");
    assert!(!text.contains('[') && !text.contains(']'), "{text}");
}

#[test]
fn espeak_ng_says_the_whole_message_whatever_brackets_the_text_holds() {
    // espeak-ng reads [[...]] as phonemes: the message after it would be
    // mangled (the ack digit unsaid). The rendered length shows it is not.
    let len = |text: &str| {
        let pbx = Pbx::new(r#"{"engine": "espeak-ng"}"#);
        let o = pbx.cli(&[
            "raise", "--id", "e", "--text", text, "--chain", "one", "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", err(&o));
        let j: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(j["speech_error"].is_null(), "{j}");
        let v = pbx.show("e");
        let _ = v;
        let dir = pbx.path("state/sounds");
        let wav = fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .map(|p| hound::WavReader::open(p).unwrap().duration())
            .max()
            .unwrap();
        wav
    };
    let plain = len("Disk full on db one");
    let brackets = len("Disk [[full]] on db one");
    let ratio = brackets as f64 / plain as f64;
    assert!((0.8..1.25).contains(&ratio), "{brackets} vs {plain}");
}

// 11. Ownership.

#[test]
fn run_as_root_alert_work_acts_as_the_owner_of_outgoing_and_the_state() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (CI runs as root)");
        return;
    }
    const NOBODY: u32 = 65534;
    let pbx = Pbx::new(NO_SPEECH);
    fs::set_permissions(pbx.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(pbx.path("alerts.json"), fs::Permissions::from_mode(0o644)).unwrap();
    let chown =
        |p: &str| std::os::unix::fs::chown(pbx.path(p), Some(NOBODY), Some(NOBODY)).unwrap();
    // a root-owned spool whose outgoing/ and tmp/ are Asterisk's user's
    fs::create_dir_all(pbx.path("state")).unwrap();
    for p in ["spool/outgoing", "spool/tmp", "state"] {
        chown(p);
    }
    assert_eq!(fs::metadata(pbx.path("spool")).unwrap().uid(), 0);
    let o = pbx.cli(&["raise", "--id", "own", "--text", "x", "--chain", "one"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // (the WAL and shared-memory files go when the last connection closes;
    // any left, and the lock files, must be Asterisk's user's too)
    let state: Vec<String> = common::names(&pbx.path("state"));
    assert!(state.contains(&"alerts.db".to_string()), "{state:?}");
    for f in state
        .iter()
        .chain(common::names(&pbx.path("state/locks")).iter())
    {
        let p = [pbx.path("state").join(f), pbx.path("state/locks").join(f)]
            .into_iter()
            .find(|p| p.exists())
            .unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!(m.uid(), NOBODY, "{} is owned by {}", p.display(), m.uid());
    }
    for f in pbx.outgoing() {
        let m = fs::metadata(pbx.path(&format!("spool/outgoing/{f}"))).unwrap();
        assert_eq!(m.uid(), NOBODY, "{f}");
    }
    // the state directory root's, outgoing/ Asterisk's: refused, naming both
    let pbx2 = Pbx::new(NO_SPEECH);
    fs::set_permissions(pbx2.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir_all(pbx2.path("state")).unwrap();
    std::os::unix::fs::chown(pbx2.path("spool/outgoing"), Some(NOBODY), Some(NOBODY)).unwrap();
    let o = pbx2.cli(&["raise", "--id", "own", "--text", "x", "--chain", "one"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let e = err(&o);
    assert!(e.contains("spool/outgoing") && e.contains("/state"), "{e}");
    assert!(!pbx2.path("state/alerts.db").exists());
    assert!(pbx2.outgoing().is_empty());
}

// 12. Metrics.

#[test]
fn metrics_pass_promtool_and_prometheus_own_parser_and_counters_never_go_down() {
    let pbx = Pbx::new(NO_SPEECH);
    let s = pbx.serve();
    // a chain that runs out unacknowledged, then a late ack
    assert_eq!(
        s.post("/alerts", r#"{"id": "out", "text": "x", "chain": "one"}"#)
            .0,
        200
    );
    let call = pbx.show("out")["calls"][0]["id"].to_string();
    let o = agi_failed(&pbx, &call, "3");
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(pbx.show("out")["state"], "unacknowledged");
    let metric = |name: &str| -> f64 {
        let (_, m) = s.req("GET", "/metrics", true, b"");
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing:\n{m}"))
            .parse()
            .unwrap()
    };
    assert_eq!(metric("autodial_alerts_unacknowledged_total"), 1.0);
    assert_eq!(s.post("/alerts/out/ack", "{}").0, 200);
    assert_eq!(
        metric("autodial_alerts_unacknowledged_total"),
        1.0,
        "never goes down"
    );
    assert_eq!(metric("autodial_alerts_acknowledged_total"), 1.0);
    let (_, text) = s.req("GET", "/metrics", true, b"");
    // promtool (Debian's prometheus package) is the judge
    let o = common::pipe(
        Command::new("promtool").args(["check", "metrics"]),
        text.as_bytes(),
    )
    .expect("promtool (apt-get install prometheus; .ci/run installs it)");
    assert!(
        o.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        err(&o)
    );
    // the reference Python client's parser: every family typed, none empty
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(sys.stdin.read()))
bad = [f.name for f in fams if f.type == "unknown" or not f.samples]
print(len(fams), bad)
sys.exit(1 if bad else 0)
"#;
    let o = common::pipe(
        Command::new("/usr/bin/python3").args(["-c", script]),
        text.as_bytes(),
    )
    .unwrap();
    assert!(
        o.status.success(),
        "python3-prometheus-client: {}{}\n{text}",
        String::from_utf8_lossy(&o.stdout),
        err(&o)
    );
    // 10 families: the 9 of alerts, calls and requests, and heartbeats by
    // state (the per-heartbeat ones only when heartbeats are configured)
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("10 []"));
}

/// The AGI's `failed` run for a call (the env block of a captured failed
/// attempt), Asterisk answering its SET VARIABLE and VERBOSE.
fn agi_failed(pbx: &Pbx, call: &str, reason: &str) -> Output {
    common::alert_agi(
        &pbx.path("alerts.json"),
        pbx.dir.path(),
        "failed-no-answer",
        &[call, "failed", reason],
        "200 result=1\n200 result=1\n",
    )
}

// 13. HTTP odds.

#[test]
fn http_odds_head_health_json_errors_bounded_paths_and_408() {
    let pbx = Pbx::new(NO_SPEECH);
    let s = pbx.serve();
    let (st, _) = s.req("HEAD", "/healthz", false, b"");
    assert_eq!(st, 200);
    for (method, path, body, want) in [
        ("GET", "/nope", Vec::new(), 404),
        ("GET", "/alertmanager", Vec::new(), 405),
        ("DELETE", "/alerts", Vec::new(), 405),
        ("POST", "/alerts", vec![b'x'; (1 << 20) + 1], 413),
    ] {
        let (st, b) = s.req(method, path, true, &body);
        assert_eq!(st, want, "{method} {path}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap_or_else(|_| panic!("not JSON: {b}"));
        assert!(v["error"].is_string() && v.get("field").is_some(), "{v}");
    }
    // a long path is logged once, bounded
    let long = format!("/{}", "a".repeat(5000));
    assert_eq!(s.req("GET", &long, true, b"").0, 404);
    let line = s
        .log()
        .lines()
        .find(|l| l.contains("/aaaa"))
        .unwrap()
        .to_string();
    assert!(line.len() < 400, "{}", line.len());
    assert_eq!(line.matches("/aaaa").count(), 1, "{line}");
    let logged = line
        .split(" GET ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert_eq!(logged, format!("/{}...", "a".repeat(199)), "{line}");
    // a body that never arrives: 408 after 10 s, logged and counted
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(
        format!(
            "POST /alerts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"id\""
        )
        .as_bytes(),
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = Instant::now();
    let mut b = [0u8; 512];
    let n = c.read(&mut b).unwrap();
    let got = String::from_utf8_lossy(&b[..n]);
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(t.elapsed() >= Duration::from_secs(9), "{:?}", t.elapsed());
    assert!(s.log().contains("POST /alerts 408"), "{}", s.log());
    let (_, m) = s.req("GET", "/metrics", true, b"");
    assert!(
        m.contains("autodial_http_requests_total{endpoint=\"/alerts\",status=\"408\"} 1"),
        "{m}"
    );
}

// 14. The AGI and an unknown call; staging files left by a killed run.

#[test]
fn a_failed_run_for_an_unknown_call_is_an_error_and_staging_leftovers_go() {
    let pbx = Pbx::new(NO_SPEECH);
    assert_eq!(pbx.cli(&["list"]).status.code(), Some(0));
    let o = agi_failed(&pbx, "987654", "3");
    assert_eq!(o.status.code(), Some(1));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("SET VARIABLE ALERT_STATUS \"ERROR\""),
        "{said}"
    );
    let log = fs::read_to_string(pbx.path("autodial-alert.log")).unwrap();
    assert!(log.contains("[ERROR] call 987654: unknown"), "{log}");
    // staging files: ours older than a minute go, a fresh one and another
    // program's stay; for the pager's commands and autodial's own
    for cmd in [&["alert", "list"][..], &["list"][..]] {
        let tmp = pbx.path("spool/tmp");
        let old = std::time::SystemTime::now() - Duration::from_secs(120);
        let nanos = old
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let ours_old = format!("agi-callback-stage.{nanos}.1.0");
        let nanos_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let ours_new = format!("agi-callback-stage.{nanos_now}.1.0");
        for f in [&ours_old, &ours_new, &"someone-else.call".to_string()] {
            fs::write(tmp.join(f), "x").unwrap();
        }
        let o = Command::new(AUTODIAL)
            .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
            .env("AST_SPOOL_DIR", pbx.path("spool"))
            .args(cmd)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{cmd:?}: {}", err(&o));
        let left = common::names(&tmp);
        assert!(!left.contains(&ours_old), "{cmd:?}: {left:?}");
        assert!(left.contains(&ours_new) && left.contains(&"someone-else.call".to_string()));
        for f in left {
            fs::remove_file(tmp.join(f)).unwrap();
        }
    }
}

// 15. The unit and the README agree.

#[test]
fn the_units_execstart_runs_the_binary_the_readme_installs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = fs::read_to_string(root.join("autodial-serve.service")).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let bin = exec.split(' ').next().unwrap();
    assert!(unit.contains("LimitNOFILE="), "the unit sets LimitNOFILE");
    // the package installs there
    let cargo = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let dir = bin.rsplit_once('/').unwrap().0.trim_start_matches('/');
    assert!(
        cargo.contains(&format!("[\"target/release/autodial\", \"{dir}/\"")),
        "the package puts autodial in /{dir}"
    );
    // every manual install in the docs puts autodial where the unit looks,
    // or installs the unit rewritten to where it put it
    let mut docs = vec![root.join("README.md")];
    if let Ok(rd) = fs::read_dir(root.join("docs")) {
        docs.extend(
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "md")),
        );
    }
    let all: String = docs
        .iter()
        .map(|d| fs::read_to_string(d).unwrap())
        .collect();
    let mut installs = 0;
    for d in &docs {
        let text = fs::read_to_string(d).unwrap();
        for line in text
            .lines()
            .filter(|l| l.contains("target/release/autodial "))
        {
            installs += 1;
            let to = line
                .split_whitespace()
                .last()
                .unwrap()
                .trim_end_matches('/');
            let installed = format!("{to}/autodial");
            if installed != bin {
                let rewrite = format!("sed 's#{bin}#{installed}#' autodial-serve.service");
                assert!(
                    all.contains(&rewrite),
                    "{}: installs autodial in {to} but the unit runs {bin} (no {rewrite:?} in the docs)",
                    d.display()
                );
            }
        }
    }
    assert!(installs > 0, "the docs show a manual install");
}
