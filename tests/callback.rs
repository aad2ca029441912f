//! The real `callback` binary, driven the way Asterisk drives it: the env
//! block (captured from Asterisk 22.10) on stdin followed by replies,
//! commands read back from stdout.

mod common;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_callback");

fn fixture(name: &str) -> Vec<u8> {
    fs::read(format!(
        "{}/fixtures/asterisk-22.10/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// A real env block with one line replaced: an invented variant of a real
/// capture, for inputs Asterisk would pass through from a trunk.
fn env_with(key: &str, value: &[u8]) -> Vec<u8> {
    let base = fixture("env-hangup.txt");
    let mut out = Vec::new();
    let mut replaced = false;
    for line in base.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(format!("{key}: ").as_bytes()) {
            out.extend_from_slice(format!("{key}: ").as_bytes());
            out.extend_from_slice(value);
            out.push(b'\n');
            replaced = true;
        } else if line == b"\n" && !replaced {
            out.extend_from_slice(format!("{key}: ").as_bytes());
            out.extend_from_slice(value);
            out.extend_from_slice(b"\n\n");
        } else {
            out.extend_from_slice(line);
        }
    }
    out
}

struct Pbx {
    dir: tempfile::TempDir,
}

impl Pbx {
    /// A spool, a log dir and a config with the given extra JSON members.
    fn new(extra: &str) -> Pbx {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("spool/outgoing")).unwrap();
        fs::create_dir_all(dir.path().join("spool/tmp")).unwrap();
        let pbx = Pbx { dir };
        pbx.config(extra);
        pbx
    }

    /// Writes the config: a base, with the members of `extra` (JSON
    /// members with a leading comma, e.g. `, "debug": true`) replacing or
    /// adding to it.
    fn config(&self, extra: &str) {
        let mut cfg = serde_json::json!({
            "permit": ["89105647899"],
            "rewrite": [{"prefix": "+7", "replace": "8"}, {"prefix": "7", "replace": "8", "digits": 11}],
            "call": {"channel": "PJSIP/{number}@sip-provider", "callerid": "\"Callback\" <84955556677>",
                     "context": "callback-menu", "max_retries": 2, "retry_time": 60, "wait_time": 30,
                     "variables": {"CALLBACK_NUMBER": "{number}"}},
            "spool_dir": self.spool(),
            "log_file": self.log(),
        });
        if let Some(members) = extra.trim().strip_prefix(',') {
            let extra: serde_json::Value =
                serde_json::from_str(&format!("{{{members}}}")).expect("test config");
            for (k, v) in extra.as_object().unwrap() {
                cfg[k] = v.clone();
            }
        }
        fs::write(self.path("callback.json"), cfg.to_string()).unwrap();
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
    fn spool(&self) -> PathBuf {
        self.path("spool")
    }
    fn log(&self) -> PathBuf {
        self.path("callback.log")
    }
    fn outgoing(&self) -> Vec<String> {
        common::names(&self.spool().join("outgoing"))
    }
    fn staging_is_empty(&self) -> bool {
        fs::read_dir(self.spool().join("tmp"))
            .unwrap()
            .next()
            .is_none()
    }
    fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("CALLBACK_CONFIG", self.path("callback.json"))
            .env_remove("AST_CONFIG_DIR")
            .env_remove("AST_SPOOL_DIR")
            .env_remove("AST_LOG_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs the binary on `input` (env block + replies).
    fn run(&self, input: &[u8], args: &[&str]) -> Output {
        let mut child = self.command().args(args).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The binary may stop reading early (a refused env block): ignore EPIPE.
        let _ = stdin.write_all(input);
        drop(stdin);
        child.wait_with_output().unwrap()
    }
}

/// An env block followed by `n` successful replies.
fn with_replies(env: &[u8], n: usize) -> Vec<u8> {
    let mut v = env.to_vec();
    for _ in 0..n {
        v.extend_from_slice(b"200 result=1\n");
    }
    v
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const QUEUED_FILE: &str = "Channel: PJSIP/89105647899@sip-provider
Callerid: \"Callback\" <84955556677>
MaxRetries: 2
RetryTime: 60
WaitTime: 30
Context: callback-menu
Extension: s
Priority: 1
Set: CALLBACK_NUMBER=89105647899
";

#[test]
fn queued_from_a_real_env_block() {
    let pbx = Pbx::new("");
    let out = pbx.run(&with_replies(&fixture("env-utf8-name.txt"), 5), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out),
        "SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n\
         SET VARIABLE CALLBACK_FILE \"callback-89105647899.call\"\n\
         VERBOSE \"callback: 89105647899 QUEUED: callback queued as callback-89105647899.call\" 1\n"
    );
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
    let file = pbx.spool().join("outgoing/callback-89105647899.call");
    assert_eq!(fs::read_to_string(&file).unwrap(), QUEUED_FILE);
    let meta = fs::metadata(&file).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    let log = pbx.log_text();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("[INFO] 89105647899 QUEUED callback queued as callback-89105647899.call"));
    assert!(pbx.staging_is_empty());
}

#[test]
fn duplicate_when_pending() {
    let pbx = Pbx::new("");
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    assert_eq!(pbx.run(&input, &[]).status.code(), Some(0));
    let out = pbx.run(&input, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"DUPLICATE\"\n"));
    assert!(!stdout(&out).contains("CALLBACK_FILE"));
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
    assert!(pbx.log_text().contains("89105647899 DUPLICATE"));
}

#[test]
fn denied_when_not_permitted() {
    let pbx = Pbx::new("");
    let out = pbx.run(
        &with_replies(&env_with("agi_callerid", b"89990000000"), 5),
        &[],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"DENIED\"\n"));
    assert!(stdout(&out).contains("not on the permit list"));
    assert!(pbx.outgoing().is_empty());
    assert!(pbx.log_text().contains("89990000000 DENIED"));
}

#[test]
fn invalid_for_unknown_callerid_and_for_a_bad_argument() {
    let pbx = Pbx::new("");
    let out = pbx.run(&with_replies(&fixture("env-unknown-callerid.txt"), 5), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"INVALID\"\n"));
    // env-args.txt: agi_arg_1 is "arg one", which wins over the caller ID
    let out = pbx.run(&with_replies(&fixture("env-args.txt"), 5), &[]);
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"INVALID\"\n"));
    assert!(stdout(&out).contains("caller ID \\\"arg one\\\" is not a number"));
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn first_argument_gives_the_number() {
    let pbx = Pbx::new("");
    // caller ID unknown, number from AGI(callback,79105647899)
    let mut env = fixture("env-unknown-callerid.txt");
    env.truncate(env.len() - 1);
    env.extend_from_slice(b"agi_arg_1: 79105647899\n\n");
    let out = pbx.run(&with_replies(&env, 5), &["79105647899"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n"));
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

#[test]
fn throttled_by_cooldown_and_by_max_pending() {
    let pbx = Pbx::new(r#", "cooldown_seconds": 3600"#);
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    assert!(stdout(&pbx.run(&input, &[])).contains("\"QUEUED\""));
    // the callback happened (Asterisk removed the file); the cool-down holds
    fs::remove_file(pbx.spool().join("outgoing/callback-89105647899.call")).unwrap();
    let out = pbx.run(&input, &[]);
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"THROTTLED\"\n"));
    assert!(stdout(&out).contains("cool-down"));
    assert!(pbx.outgoing().is_empty());

    let pbx = Pbx::new(r#", "max_pending": 1"#);
    fs::write(pbx.spool().join("outgoing/callback-89100000000.call"), "x").unwrap();
    let out = pbx.run(&input, &[]);
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"THROTTLED\"\n"));
    assert!(stdout(&out).contains("max_pending is 1"));
}

#[test]
fn config_errors_are_error_exit_1_naming_the_file() {
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    for (content, want) in [
        (None, "cannot open"),
        (Some("{not json"), "invalid config"),
        (
            Some(r#"{"call": {"channel": "PJSIP/x", "context": "c"}, "colldown": 1}"#),
            "unknown field `colldown`",
        ),
    ] {
        let pbx = Pbx::new("");
        match content {
            Some(c) => fs::write(pbx.path("callback.json"), c).unwrap(),
            None => fs::remove_file(pbx.path("callback.json")).unwrap(),
        }
        let out = pbx.run(&input, &[]);
        assert_eq!(out.status.code(), Some(1), "{want}");
        let text = stdout(&out);
        assert!(text.starts_with("SET VARIABLE CALLBACK_STATUS \"ERROR\"\n"));
        assert!(text.contains("callback.json"), "{text}");
        assert!(text.contains(want), "{text}");
        assert!(pbx.outgoing().is_empty());
    }
}

#[test]
fn unreadable_permit_file_is_an_error() {
    let pbx = Pbx::new(r#", "permit_file": "/nonexistent/permit.txt""#);
    let out = pbx.run(&with_replies(&fixture("env-hangup.txt"), 5), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("/nonexistent/permit.txt"));
}

#[test]
fn permit_file_entries_and_comments() {
    let pbx = Pbx::new("");
    fs::write(
        pbx.path("permit.txt"),
        "# kept by the CRM\n\n  89105640000  # Ivan\n89105647899# Petr\n",
    )
    .unwrap();
    pbx.config(&format!(
        r#", "permit": [], "permit_file": "{}""#,
        pbx.path("permit.txt").display()
    ));
    let out = pbx.run(&with_replies(&fixture("env-hangup.txt"), 5), &[]);
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n"));
    fs::write(pbx.path("permit.txt"), "89105647899\nnot-a-number\n").unwrap();
    fs::remove_file(pbx.spool().join("outgoing/callback-89105647899.call")).unwrap();
    let out = pbx.run(&with_replies(&fixture("env-hangup.txt"), 5), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("permit.txt: line 2"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn spool_failures_are_error_with_nothing_written() {
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    // spool missing
    let pbx = Pbx::new("");
    fs::remove_dir_all(pbx.spool()).unwrap();
    let out = pbx.run(&input, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("SET VARIABLE CALLBACK_STATUS \"ERROR\""));
    assert!(stdout(&out).contains("spool"), "{}", stdout(&out));
    // staging dir missing
    let pbx = Pbx::new("");
    fs::remove_dir(pbx.spool().join("tmp")).unwrap();
    let out = pbx.run(&input, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("staging directory"),
        "{}",
        stdout(&out)
    );
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn an_unwritable_spool_is_error_with_nothing_written() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let pbx = Pbx::new("");
    // root ignores permissions: run as nobody then, as Asterisk runs as its
    // own unprivileged user
    let root = unsafe { libc::geteuid() } == 0;
    fs::create_dir(pbx.spool().join("callback-state")).unwrap();
    for (p, mode) in [
        (pbx.dir.path().to_path_buf(), 0o755),
        (pbx.spool(), 0o755),
        (pbx.spool().join("callback-state"), 0o777),
        (pbx.spool().join("tmp"), 0o777),
        (pbx.spool().join("outgoing"), 0o555),
        (pbx.path("callback.json"), 0o644),
    ] {
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    }
    fs::write(pbx.log(), "").unwrap();
    fs::set_permissions(pbx.log(), fs::Permissions::from_mode(0o666)).unwrap();
    let mut cmd = pbx.command();
    if root {
        cmd.uid(65534).gid(65534);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&with_replies(&fixture("env-hangup.txt"), 5))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let t = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.starts_with("SET VARIABLE CALLBACK_STATUS \"ERROR\"\n"),
        "{t}"
    );
    assert!(t.contains("outgoing"), "{t}");
    assert!(pbx.outgoing().is_empty());
    assert!(pbx.staging_is_empty());
    assert!(
        pbx.log_text().contains("89105647899 ERROR"),
        "{}",
        pbx.log_text()
    );
}

#[test]
fn the_sample_configs_are_valid() {
    for f in ["agi-bin/callback.json", "agi-bin/callback-demo.json"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        if let Err(e) = agi_callback::callback::Config::load(&p) {
            panic!("{e}");
        }
    }
}

#[test]
fn bad_env_blocks_are_error_exit_1_nothing_written_nothing_said() {
    let full = fixture("env-hangup.txt");
    let mut long = b"agi_request: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 1 << 20));
    long.extend_from_slice(b"\n\n");
    for input in [
        full[..full.len() - 1].to_vec(), // cut short, no empty line
        full[..full.len() / 2].to_vec(), // cut mid-line
        vec![0xff, 0x00, 0x13, 0x37, b'\n', b'\n'], // binary garbage
        long,                            // 1 MB line
        Vec::new(),                      // nothing at all
    ] {
        let pbx = Pbx::new("");
        let out = pbx.run(&input, &[]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stdout(&out), "");
        assert!(pbx.outgoing().is_empty());
        assert!(pbx.log_text().contains("- ERROR"), "{}", pbx.log_text());
    }
}

#[test]
fn threats_from_the_caller_id_are_refused() {
    let pbx = Pbx::new("");
    for cid in [
        &b"89105647899\nApplication: System"[..],
        b"89105647899\r\nApplication: System",
        b"89105647899\rApplication: System",
        b"unknown",
        b"",
        b"anonymous",
        b"Restricted",
        b"../../etc/x",
        b"a/b",
        b"123;x",
        b"123 #x",
        b"123@ctx",
        b"123&PJSIP/x",
        b"\"X\" <123>",
        "\u{0668}\u{0669}\u{0661}".as_bytes(),
        "\u{ff18}\u{ff19}".as_bytes(),
        b"\xff\xfe",
    ] {
        // An LF inside the value ends the env line: Asterisk would have
        // sent the rest as a line of its own, which our parser refuses.
        let out = pbx.run(&with_replies(&env_with("agi_callerid", cid), 5), &[]);
        let text = stdout(&out);
        assert!(
            text.contains("CALLBACK_STATUS \"INVALID\"") || out.status.code() == Some(1),
            "{cid:?}: {text}"
        );
        assert!(!text.contains("QUEUED"), "{cid:?}");
        assert!(pbx.outgoing().is_empty(), "{cid:?}");
    }
    let digits = "9".repeat(300);
    let out = pbx.run(
        &with_replies(&env_with("agi_callerid", digits.as_bytes()), 5),
        &[],
    );
    assert!(stdout(&out).contains("\"INVALID\""));
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn three_forms_of_one_number_share_one_permit_entry_and_one_file() {
    let pbx = Pbx::new("");
    let mut statuses = Vec::new();
    for cid in ["+79105647899", "79105647899", "89105647899"] {
        let out = pbx.run(
            &with_replies(&env_with("agi_callerid", cid.as_bytes()), 5),
            &[],
        );
        let t = stdout(&out);
        statuses.push(t.lines().next().unwrap().to_string());
    }
    assert_eq!(
        statuses,
        [
            "SET VARIABLE CALLBACK_STATUS \"QUEUED\"",
            "SET VARIABLE CALLBACK_STATUS \"DUPLICATE\"",
            "SET VARIABLE CALLBACK_STATUS \"DUPLICATE\""
        ]
    );
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

#[test]
fn replies_of_a_dead_channel_and_eof_do_not_stop_the_callback() {
    let pbx = Pbx::new("");
    // the caller hung up: every command gets 511
    let mut input = fixture("env-hangup.txt");
    for _ in 0..5 {
        input.extend_from_slice(
            b"511 Command Not Permitted on a dead channel or intercept routine\n",
        );
    }
    let out = pbx.run(&input, &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
    // stdin at EOF right after the env block: one command, then stop
    let pbx = Pbx::new("");
    let out = pbx.run(&fixture("env-hangup.txt"), &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n");
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

#[test]
fn closed_stdout_epipe_is_no_panic_and_the_file_is_queued() {
    let pbx = Pbx::new("");
    let mut child = pbx.command().stdout(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take()); // Asterisk closed our stdout
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&fixture("env-hangup.txt")).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "killed by a signal? {:?}",
        out.status
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

/// Takes the spool's callback lock as a callback process would.
fn hold_lock(pbx: &Pbx) -> fs::File {
    let dir = pbx.spool().join("callback-state");
    fs::create_dir_all(&dir).unwrap();
    let f = fs::File::create(dir.join("lock")).unwrap();
    use std::os::unix::io::AsRawFd;
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    f
}

/// Waits until process `pid` has `path` open.
fn wait_until_open(pid: u32, path: &Path) {
    for _ in 0..500 {
        if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
            if rd
                .filter_map(Result::ok)
                .any(|e| fs::read_link(e.path()).is_ok_and(|l| l == path))
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("{pid} never opened {}", path.display());
}

#[test]
fn sighup_after_the_env_block_still_queues() {
    let pbx = Pbx::new("");
    // Holding the spool lock holds the program after it read the env block
    // (it has the lock file open, waiting) until we have sent the signal.
    let lock = hold_lock(&pbx);
    let mut child = pbx.command().spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&fixture("env-hangup.txt")).unwrap();
    wait_until_open(child.id(), &pbx.spool().join("callback-state/lock"));
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(100));
    drop(lock);
    // after the hang-up Asterisk answers 511 to channel commands
    for _ in 0..5 {
        let _ = stdin.write_all(b"200 result=1\n");
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{:?}", out.status);
    assert!(stdout(&out).starts_with("SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n"));
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

#[test]
fn a_lock_held_too_long_is_error_not_a_hang() {
    let pbx = Pbx::new("");
    let _lock = hold_lock(&pbx);
    let t = std::time::Instant::now();
    let out = pbx.run(&with_replies(&fixture("env-hangup.txt"), 5), &[]);
    let s = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{s}");
    assert!(
        s.starts_with("SET VARIABLE CALLBACK_STATUS \"ERROR\"\n"),
        "{s}"
    );
    assert!(s.contains("still locked by another process"), "{s}");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn fifty_processes_one_number_one_queued() {
    let pbx = Pbx::new("");
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    let mut children = Vec::new();
    for _ in 0..50 {
        let mut c = pbx.command().spawn().unwrap();
        children.push((c.stdin.take().unwrap(), c));
    }
    // all started before any gets its input
    for (stdin, _) in children.iter_mut() {
        stdin.write_all(&input).unwrap();
    }
    let mut queued = 0;
    let mut duplicate = 0;
    for (stdin, child) in children {
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let t = stdout(&out);
        if t.starts_with("SET VARIABLE CALLBACK_STATUS \"QUEUED\"") {
            queued += 1;
        } else if t.starts_with("SET VARIABLE CALLBACK_STATUS \"DUPLICATE\"") {
            duplicate += 1;
        }
    }
    assert_eq!((queued, duplicate), (1, 49));
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
    assert!(pbx.staging_is_empty());
    // 50 whole log lines, none interleaved
    let log = pbx.log_text();
    assert_eq!(log.lines().count(), 50);
    assert!(
        log.lines().all(|l| l.contains("[INFO] 89105647899 ")),
        "{log}"
    );
}

#[test]
fn debug_logs_every_variable_escaped_and_every_command_and_reply() {
    let pbx = Pbx::new(r#", "debug": true"#);
    let mut env = env_with("agi_calleridname", b"Ivan\x01\xff");
    let mut replies = with_replies(&[], 5);
    env.append(&mut replies);
    pbx.run(&env, &[]);
    let log = pbx.log_text();
    assert!(
        log.contains("env agi_calleridname: Ivan\\x01\\xff"),
        "{log}"
    );
    assert!(log.contains("env agi_channel: Local/hup@cap-00000002;2"));
    assert_eq!(log.matches("[DEBUG] env agi_").count(), 20);
    assert!(log.contains("> SET VARIABLE CALLBACK_STATUS \"QUEUED\""));
    assert!(log.contains("< 200 result=1"));
}

#[test]
fn an_unwritable_log_is_said_once_and_does_not_block() {
    let pbx = Pbx::new("");
    pbx.config(r#", "log_file": "/nonexistent/dir/callback.log""#);
    let out = pbx.run(&with_replies(&fixture("env-hangup.txt"), 5), &[]);
    let t = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.starts_with("SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n"),
        "{t}"
    );
    assert_eq!(
        t.matches("cannot open log file /nonexistent/dir/callback.log")
            .count(),
        1
    );
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

#[test]
fn stale_staging_files_of_ours_are_cleaned_others_kept() {
    let pbx = Pbx::new("");
    let tmp = pbx.spool().join("tmp");
    // ours, from a killed run two minutes ago; ours, fresh; someone else's
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        - 120_000_000_000;
    let stale = format!("agi-callback-stage.{old}.1.0");
    let fresh = format!(
        "agi-callback-stage.{}.1.0",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    for n in [&stale, &fresh, &"voicemail-tmp".to_string()] {
        fs::write(tmp.join(n), "x").unwrap();
    }
    pbx.run(&with_replies(&fixture("env-hangup.txt"), 5), &[]);
    let left = common::names(&tmp);
    let mut want = vec![fresh, "voicemail-tmp".to_string()];
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn demo_runs_and_help_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--demo")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let t = stdout(&out);
    assert!(
        t.contains("> SET VARIABLE CALLBACK_STATUS \"QUEUED\""),
        "{t}"
    );
    assert!(dir
        .path()
        .join("callback-demo/spool/outgoing/callback-89105647899.call")
        .exists());
    let again = Command::new(BIN)
        .arg("--demo")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(stdout(&again).contains("\"DUPLICATE\""));

    let help = Command::new(BIN).arg("--help").output().unwrap();
    let h = stdout(&help);
    for word in [
        "QUEUED",
        "DUPLICATE",
        "DENIED",
        "INVALID",
        "THROTTLED",
        "ERROR",
        "CALLBACK_CONFIG",
        "--demo",
    ] {
        assert!(h.contains(word), "{word}");
    }
}

/// The real env block with `agi_arg_1: number` added after the standard keys.
fn env_with_arg(number: &str) -> Vec<u8> {
    let mut env = fixture("env-hangup.txt");
    env.truncate(env.len() - 1);
    env.extend_from_slice(format!("agi_arg_1: {number}\n\n").as_bytes());
    env
}

/// Starts every run before any gets its input, then feeds them all; the
/// status each set, in order.
fn run_together(pbx: &Pbx, inputs: &[Vec<u8>]) -> Vec<String> {
    let mut children = Vec::new();
    for _ in inputs {
        let mut c = pbx.command().spawn().unwrap();
        children.push((c.stdin.take().unwrap(), c));
    }
    for ((stdin, _), input) in children.iter_mut().zip(inputs) {
        let _ = stdin.write_all(input);
    }
    children
        .into_iter()
        .map(|(stdin, child)| {
            drop(stdin);
            let out = child.wait_with_output().unwrap();
            let t = stdout(&out);
            t.lines()
                .next()
                .and_then(|l| l.strip_prefix("SET VARIABLE CALLBACK_STATUS "))
                .unwrap_or("(none)")
                .trim_matches('"')
                .to_string()
        })
        .collect()
}

fn count(statuses: &[String], s: &str) -> usize {
    statuses.iter().filter(|x| *x == s).count()
}

#[test]
fn max_pending_holds_for_120_callers_at_once() {
    let numbers: Vec<String> = (0..120).map(|i| format!("89160000{i:03}")).collect();
    let pbx = Pbx::new(&format!(
        r#", "max_pending": 3, "permit": {}"#,
        serde_json::to_string(&numbers).unwrap()
    ));
    let inputs: Vec<_> = numbers
        .iter()
        .map(|n| with_replies(&env_with_arg(n), 5))
        .collect();
    let st = run_together(&pbx, &inputs);
    assert_eq!(count(&st, "QUEUED"), 3, "{st:?}");
    assert_eq!(count(&st, "THROTTLED"), 117, "{st:?}");
    assert_eq!(pbx.outgoing().len(), 3);
    assert!(pbx.staging_is_empty());
}

#[test]
fn cooldown_holds_for_40_callers_at_once_while_asterisk_takes_each_file() {
    let pbx = Pbx::new(r#", "cooldown_seconds": 3600"#);
    // Asterisk with a callback that fails at once: every file is gone as
    // soon as it appears; count what was published
    let outgoing = pbx.spool().join("outgoing");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut taken = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for e in fs::read_dir(&outgoing).unwrap().flatten() {
                    if fs::remove_file(e.path()).is_ok() {
                        taken += 1;
                    }
                }
            }
            taken
        })
    };
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    let st = run_together(&pbx, &vec![input; 40]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let taken = consumer.join().unwrap();
    assert_eq!(count(&st, "QUEUED"), 1, "{st:?}");
    assert_eq!(
        count(&st, "THROTTLED") + count(&st, "DUPLICATE"),
        39,
        "{st:?}"
    );
    assert_eq!(taken + pbx.outgoing().len(), 1);
}

#[test]
fn a_stamp_from_the_future_costs_one_cooldown_not_the_clock_error() {
    let pbx = Pbx::new(r#", "cooldown_seconds": 1"#);
    let stamp = pbx.spool().join("callback-state/89105647899");
    fs::create_dir_all(stamp.parent().unwrap()).unwrap();
    let f = fs::File::create(&stamp).unwrap();
    let year = Duration::from_secs(365 * 86400);
    f.set_modified(std::time::SystemTime::now() + year).unwrap();
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    assert!(stdout(&pbx.run(&input, &[])).contains("\"THROTTLED\""));
    std::thread::sleep(Duration::from_millis(1100));
    let out = pbx.run(&input, &[]);
    assert!(stdout(&out).contains("\"QUEUED\""), "{}", stdout(&out));
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

/// Runs with a watchdog: a run that hangs is killed and fails the test.
fn run_bounded(pbx: &Pbx, input: &[u8], args: &[&str]) -> Output {
    let mut child = pbx.command().args(args).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(100));
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
            }
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            true
        })
    };
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(!watchdog.join().unwrap(), "callback hung and was killed");
    out
}

#[test]
fn planted_stamps_are_refused_never_followed_or_waited_on() {
    let pbx = Pbx::new(r#", "cooldown_seconds": 60"#);
    let dir = pbx.spool().join("callback-state");
    fs::create_dir_all(&dir).unwrap();
    let victim = pbx.path("victim");
    fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("89105647899")).unwrap();
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    let out = run_bounded(&pbx, &input, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("symbolic link"), "{}", stdout(&out));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    fs::remove_file(dir.join("89105647899")).unwrap();
    mkfifo(&dir.join("89105647899"));
    let out = run_bounded(&pbx, &input, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FIFO"), "{}", stdout(&out));
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn a_log_fifo_without_a_reader_never_blocks_the_callback() {
    let pbx = Pbx::new("");
    let fifo = pbx.path("log.fifo");
    mkfifo(&fifo);
    pbx.config(&format!(r#", "log_file": "{}""#, fifo.display()));
    let out = run_bounded(&pbx, &with_replies(&fixture("env-hangup.txt"), 5), &[]);
    let t = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.starts_with("SET VARIABLE CALLBACK_STATUS \"QUEUED\"\n"),
        "{t}"
    );
    assert_eq!(t.matches("cannot open log file").count(), 1, "{t}");
    assert!(t.contains("FIFO"), "{t}");
    assert_eq!(pbx.outgoing(), ["callback-89105647899.call"]);
}

#[test]
fn a_fifo_as_config_or_permit_file_is_a_named_error_at_once() {
    let input = with_replies(&fixture("env-hangup.txt"), 5);
    let pbx = Pbx::new("");
    let fifo = pbx.path("permit.fifo");
    mkfifo(&fifo);
    pbx.config(&format!(
        r#", "permit": [], "permit_file": "{}""#,
        fifo.display()
    ));
    let out = run_bounded(&pbx, &input, &[]);
    assert_eq!(out.status.code(), Some(1));
    let t = stdout(&out);
    assert!(
        t.contains("permit.fifo: cannot open permit_file: is a FIFO"),
        "{t}"
    );
    fs::remove_file(pbx.path("callback.json")).unwrap();
    mkfifo(&pbx.path("callback.json"));
    let out = run_bounded(&pbx, &input, &[]);
    assert_eq!(out.status.code(), Some(1));
    let t = stdout(&out);
    assert!(t.contains("callback.json: cannot open: is a FIFO"), "{t}");
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn a_name_with_line_feeds_cannot_cut_or_forge_the_env_block() {
    let pbx = Pbx::new("");
    // "Bob\n\nX": the block ends after the name; the caller ID (permitted)
    // must not be used in place of the argument the dialplan passed
    let mut env = env_with("agi_calleridname", b"Bob\n\nX");
    env.truncate(env.len() - 1);
    env.extend_from_slice(b"agi_arg_1: 89990000000\n\n");
    let out = run_bounded(&pbx, &with_replies(&env, 5), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "", "out of step: nothing said");
    assert!(pbx
        .log_text()
        .contains("ERROR AGI environment has no agi_callingpres"));
    assert!(pbx.outgoing().is_empty());

    // a forged tail: every standard key and a permitted agi_arg_1, then the
    // block's end, inside the name; the real rest follows on the pipe
    let real = String::from_utf8(fixture("env-hangup.txt")).unwrap();
    let (head, tail) = real.split_once("agi_callingpres").unwrap();
    let tail = format!("agi_callingpres{}", tail.trim_end_matches('\n'));
    let name_line = head.lines().last().unwrap().to_string();
    let head = head.strip_suffix(&format!("{name_line}\n")).unwrap();
    let forged = format!("{head}agi_calleridname: Bob\n{tail}\nagi_arg_1: 89105647899\n\n");
    let rest = format!("{tail}\nagi_arg_1: 89990000000\n\n");
    let input = with_replies(format!("{forged}{rest}").as_bytes(), 5);
    let out = run_bounded(&pbx, &input, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    assert!(
        pbx.log_text()
            .contains("ERROR AGI environment cut short: more environment lines follow"),
        "{}",
        pbx.log_text()
    );
    assert!(pbx.outgoing().is_empty());
}

#[test]
fn run_by_asterisk_every_argument_is_an_agi_argument() {
    let pbx = Pbx::new("");
    for mode in ["--demo", "--help", "--version"] {
        let mut env = fixture("env-hangup.txt");
        env.truncate(env.len() - 1);
        env.extend_from_slice(format!("agi_arg_1: {mode}\n\n").as_bytes());
        let mut child = pbx
            .command()
            .arg(mode)
            .env("AST_AGI_DIR", "/usr/share/asterisk/agi-bin")
            .current_dir(pbx.dir.path())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&with_replies(&env, 5)).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let t = stdout(&out);
        assert!(
            t.starts_with("SET VARIABLE CALLBACK_STATUS \"INVALID\"\n"),
            "{mode}: {t}"
        );
        assert!(
            t.lines()
                .all(|l| l.starts_with("SET VARIABLE ") || l.starts_with("VERBOSE ")),
            "{t}"
        );
    }
    assert!(!pbx.path("callback-demo").exists());
}

#[test]
fn separators_and_bidi_controls_from_a_name_are_escaped_in_the_log() {
    let pbx = Pbx::new(r#", "debug": true"#);
    let name = "Bob\u{2028}x\u{2029}\u{202e}evil\u{2066}\u{200b}";
    let env = env_with("agi_calleridname", name.as_bytes());
    pbx.run(&with_replies(&env, 5), &[]);
    let log = pbx.log_text();
    assert!(
        log.contains(
            "env agi_calleridname: Bob\\u{2028}x\\u{2029}\\u{202e}evil\\u{2066}\\u{200b}\n"
        ),
        "{log}"
    );
    for raw in ['\u{2028}', '\u{2029}', '\u{202e}', '\u{2066}', '\u{200b}'] {
        assert!(!log.contains(raw), "{raw:?}");
    }
}
