//! The status page under load: `GET /` from `autodial serve` (the
//! release binary) with 10,000 alerts in the history and 50 open, over
//! loopback, one request at a time; p50/p99/max of the whole request
//! (target: p99 under 50 ms). `BENCH_RUNS` requests (default 500).
//!
//!     cargo bench --bench ui

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agi_callback::alert::config::AlertsConfig;
use agi_callback::alert::pager::{Pager, RaiseRequest};

fn get(port: u16, path: &str, cookie: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut b = Vec::new();
    s.read_to_end(&mut b).unwrap();
    let t = String::from_utf8_lossy(&b);
    let status = t
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, b.len())
}

fn main() {
    let target = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "autodial", "-q"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(st.success());
    let autodial = target.join("release/autodial");
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm/agi-callback-bench-ui")
    } else {
        target.join("bench-work/ui")
    };
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(base.join("spool/outgoing")).unwrap();
    fs::create_dir_all(base.join("spool/tmp")).unwrap();
    let cfg = base.join("alerts.json");
    fs::write(
        &cfg,
        format!(
            r#"{{"call": {{"channel": "PJSIP/{{number}}@sip-provider"}},
            "contacts": {{"ivan": {{"number": "1001"}}, "petr": {{"number": "1002"}}}},
            "schedules": {{"dba": {{"time_zone": "Europe/Moscow", "layers": [
                {{"name": "weekly", "contacts": ["ivan", "petr"], "shift": "1w", "start": "2026-01-05T10:00"}}]}}}},
            "chains": {{"ops": {{"steps": [{{"contacts": ["ivan"]}},
                                          {{"contacts": ["petr"], "after_seconds": 600}}]}}}},
            "heartbeats": {{"prom": {{"timeout_seconds": 300, "chain": "ops", "text": "x"}}}},
            "speech": {{"engine": "none"}},
            "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
            d = base.display()
        ),
    )
    .unwrap();
    // the history, through the pager's door: 10,000 raised, all but 50
    // resolved (each with its calls)
    let t = Instant::now();
    {
        let p = Pager::open(AlertsConfig::load(&cfg).unwrap()).unwrap();
        for i in 0..10_000 {
            let id = format!("hist-{i:05}");
            p.raise(
                &RaiseRequest {
                    id: id.clone(),
                    text: format!("Disk full on db{i} (/var at 99%)"),
                    chain: Some("ops".into()),
                    labels: [
                        ("alertname".to_string(), "DiskFull".to_string()),
                        ("instance".to_string(), format!("db{i}:9100")),
                    ]
                    .into(),
                    labels_cut: 0,
                },
                None,
            )
            .unwrap();
            if i < 9_950 {
                p.resolve(&id).unwrap();
            }
        }
    }
    eprintln!("history made in {:.1} s", t.elapsed().as_secs_f64());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    fs::write(base.join("token"), "bench").unwrap();
    let mut srv = Command::new(&autodial)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--config")
        .arg(&cfg)
        .arg("--token-file")
        .arg(base.join("token"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    // sign in
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = "token=bench&name=ivan";
    write!(
        s,
        "POST /ui/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut b = Vec::new();
    s.read_to_end(&mut b).unwrap();
    let t = String::from_utf8_lossy(&b);
    let cookie = t
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("signed in")
        .to_string();
    let (status, len) = get(port, "/", &cookie);
    assert_eq!(status, 200);
    for _ in 0..20 {
        get(port, "/", &cookie);
    }
    let mut lat: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let (st, _) = get(port, "/", &cookie);
            assert_eq!(st, 200);
            t.elapsed()
        })
        .collect();
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!("| what | p50 ms | p99 ms | max ms | page bytes | runs |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| GET / (10,000 alerts in the history, 50 open, 20 ended shown) | {:.2} | {:.2} | {:.2} | {len} | {runs} |",
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(*lat.last().unwrap())
    );
    let _ = srv.kill();
    let _ = srv.wait();
    let _ = fs::remove_dir_all(&base);
}
