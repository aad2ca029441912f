//! Helpers shared by the integration tests.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The file names in `dir`, sorted.
#[allow(dead_code)]
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// One HTTP/1.1 request on its own connection to 127.0.0.1:`port` (as
/// Alertmanager 0.25 sends it); (status, body). For the receiver's tests.
#[allow(dead_code)]
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Alertmanager/0.25.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Runs the `alert` AGI program as Asterisk would: the env block captured
/// from Asterisk 22.10 in `fixtures/asterisk-22.10/alert-flow/<capture>.env.txt`
/// with `args` in place of its own arguments, then `replies` (Asterisk's
/// answers to the commands it will send). `config` is alerts.json, the log
/// goes to `log_dir`.
#[allow(dead_code)]
pub fn alert_agi(
    config: &Path,
    log_dir: &Path,
    capture: &str,
    args: &[&str],
    replies: &str,
) -> Output {
    let env = fs::read_to_string(format!(
        "{}/fixtures/asterisk-22.10/alert-flow/{capture}.env.txt",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // the captured block with this run's arguments in place of its own
    let mut block: String = env
        .lines()
        .filter(|l| !l.starts_with("agi_arg_") && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    for (i, a) in args.iter().enumerate() {
        block.push_str(&format!("agi_arg_{}: {a}\n", i + 1));
    }
    block.push('\n');
    let mut child = Command::new(env!("CARGO_BIN_EXE_alert"))
        .env("AUTODIAL_ALERTS", config)
        .env("AST_LOG_DIR", log_dir)
        .env("AST_AGI_DIR", "/usr/share/asterisk/agi-bin")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // (the program may end before reading everything: no error then)
    let _ = stdin.write_all(block.as_bytes());
    let _ = stdin.write_all(replies.as_bytes());
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Runs `cmd` with `input` on its stdin; its output.
#[allow(dead_code)]
pub fn pipe(cmd: &mut Command, input: &[u8]) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output()
}

/// `autodial serve` on a free loopback port with `config` and the bearer
/// token `token`, its log in `dir/serve.log`; killed when dropped.
#[allow(dead_code)]
pub struct Serve {
    pub port: u16,
    pub child: std::process::Child,
    pub log: std::path::PathBuf,
}

#[allow(dead_code)]
impl Serve {
    pub fn start(config: &Path, dir: &Path, token: &str) -> Serve {
        fs::write(dir.join("token"), token).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_autodial"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--config")
            .arg(config)
            .arg("--token-file")
            .arg(dir.join("token"))
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let t = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Serve { port, child, log }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A PBX in a temporary directory: a spool (`spool/outgoing`, `spool/tmp`)
/// and an `alerts.json` whose state and spool are there. Each test file
/// adds its own configs and helpers.
#[allow(dead_code)]
pub struct Pbx {
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)]
impl Pbx {
    /// The directories, no config yet.
    pub fn empty() -> Pbx {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("spool/outgoing")).unwrap();
        fs::create_dir_all(dir.path().join("spool/tmp")).unwrap();
        Pbx { dir }
    }

    /// Writes `alerts.json`: `members` (JSON members without the braces)
    /// and the state and spool directories.
    pub fn write_config(&self, members: &str) {
        let cfg = format!(
            r#"{{{members},
              "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
            d = self.dir.path().display()
        );
        fs::write(self.path("alerts.json"), cfg).unwrap();
    }

    pub fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    /// The files pending in `outgoing/`, sorted.
    pub fn outgoing(&self) -> Vec<String> {
        names(&self.path("spool/outgoing"))
    }

    /// `autodial ARGS` with this config.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_autodial"))
            .env("AUTODIAL_ALERTS", self.path("alerts.json"))
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs and expects exit status `code`; stdout parsed as JSON when it
    /// is JSON.
    pub fn ok(&self, code: i32, args: &[&str]) -> serde_json::Value {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&o.stdout).into())
        })
    }

    /// `autodial alert show ID --json`.
    pub fn show(&self, id: &str) -> serde_json::Value {
        self.ok(0, &["alert", "show", id, "--json"])
    }

    /// The status page's test setup: ivan, olga, petr, the schedule
    /// `dba` (ivan and petr weekly, in Moscow), the chain `default` (ivan
    /// after `first_after` s, petr after 600 s, the catch-all route), the
    /// heartbeat `backup`; no speech.
    pub fn ui(first_after: u32) -> Pbx {
        let pbx = Pbx::empty();
        pbx.write_config(&format!(
            r#""call": {{"channel": "Local/{{number}}@alert-phones"}},
              "contacts": {{"ivan": {{"number": "1001"}}, "olga": {{"number": "1002"}},
                           "petr": {{"number": "1003"}}}},
              "schedules": {{"dba": {{"time_zone": "Europe/Moscow", "layers": [
                 {{"name": "weekly", "contacts": ["ivan", "petr"], "shift": "1w", "start": "2026-01-05T10:00"}}]}}}},
              "chains": {{"default": {{"steps": [{{"contacts": ["ivan"], "after_seconds": {first_after}}},
                                                {{"contacts": ["petr"], "after_seconds": 600}}]}}}},
              "heartbeats": {{"backup": {{"timeout_seconds": 3600, "chain": "default", "text": "no backup"}}}},
              "routes": [{{"chain": "default"}}],
              "speech": {{"engine": "none"}}"#
        ));
        pbx
    }

    /// The AGI programs' log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path("autodial-alert.log")).unwrap_or_default()
    }
}
