//! The real `autodial` binary.

mod common;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{NaiveDate, TimeZone, Utc};

struct Sp {
    dir: tempfile::TempDir,
}

impl Sp {
    fn new() -> Sp {
        Sp::in_dir(tempfile::tempdir().unwrap())
    }
    /// On tmpfs, which stores any mtime (ext4 stops in 2446).
    fn on_tmpfs() -> Sp {
        Sp::in_dir(tempfile::tempdir_in("/dev/shm").unwrap())
    }
    fn in_dir(dir: tempfile::TempDir) -> Sp {
        fs::create_dir(dir.path().join("outgoing")).unwrap();
        fs::create_dir(dir.path().join("tmp")).unwrap();
        Sp { dir }
    }
    fn run(&self, args: &[&str]) -> Output {
        self.run_tz("UTC", args)
    }
    fn run_tz(&self, tz: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_autodial"))
            .env("TZ", tz)
            .env_remove("AST_SPOOL_DIR")
            .arg("--spool-dir")
            .arg(self.dir.path())
            .args(args)
            .output()
            .unwrap()
    }
    /// `call --channel Local/1@a --application Wait` plus `extra`.
    fn wait_call(&self, tz: &str, extra: &[&str]) -> Output {
        let mut args = vec!["call", "--channel", "Local/1@a", "--application", "Wait"];
        args.extend_from_slice(extra);
        self.run_tz(tz, &args)
    }
    fn outgoing(&self) -> Vec<String> {
        common::names(&self.dir.path().join("outgoing"))
    }
    fn file(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join("outgoing").join(name)).unwrap()
    }
    fn mtime(&self, name: &str) -> i64 {
        let m = fs::metadata(self.dir.path().join("outgoing").join(name)).unwrap();
        m.modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const ALL: &[&str] = &[
    "call",
    "--channel",
    "PJSIP/89161112233@sip-provider",
    "--context",
    "monitoring-alert",
    "--extension",
    "alert",
    "--priority",
    "2",
    "--callerid",
    "\"Zabbix\" <100>",
    "--max-retries",
    "2",
    "--retry-time",
    "60",
    "--wait-time",
    "30",
    "--account",
    "monitoring",
    "--set",
    "ALERT_PROMPT=tt-somethingwrong",
    "--set",
    "MSG=disk full; /var 98%",
    "--archive",
    "--name",
    "alert-1.call",
];

const ALL_FILE: &str = "Channel: PJSIP/89161112233@sip-provider
Callerid: \"Zabbix\" <100>
MaxRetries: 2
RetryTime: 60
WaitTime: 30
Account: monitoring
Context: monitoring-alert
Extension: alert
Priority: 2
Set: ALERT_PROMPT=tt-somethingwrong
Set: MSG=disk full\\; /var 98%
Archive: yes
";

#[test]
fn every_option_reaches_the_file() {
    let sp = Sp::new();
    let o = sp.run(ALL);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).starts_with("queued "), "{}", out(&o));
    assert_eq!(sp.outgoing(), ["alert-1.call"]);
    assert_eq!(sp.file("alert-1.call"), ALL_FILE);

    let mut dry: Vec<&str> = ALL.to_vec();
    dry.push("--dry-run");
    let sp2 = Sp::new();
    let o = sp2.run(&dry);
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).ends_with(ALL_FILE), "{}", out(&o));
    assert!(sp2.outgoing().is_empty());

    let o = sp2.run(&[
        "call",
        "--channel",
        "Local/1@autocaller",
        "--application",
        "Playback",
        "--data",
        "tt-somethingwrong&vm-goodbye",
        "--dry-run",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["status"], "dry-run");
    assert_eq!(
        v["callfile"],
        "Channel: Local/1@autocaller\nApplication: Playback\nData: tt-somethingwrong&vm-goodbye\n"
    );
}

#[test]
fn invalid_values_exit_2_naming_them_and_write_nothing() {
    let sp = Sp::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["call", "--channel", "PJSIP", "--context", "c"],
            "--channel",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--set",
                "NOEQUALS",
            ],
            "--set",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--set",
                "A B=1",
            ],
            "--set",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--name",
                "../x",
            ],
            "--name",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--name",
                ".hidden",
            ],
            "--name",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--name",
                "a+b",
            ],
            "--name",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--at",
                "tomorrow",
            ],
            "--at",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--in",
                "5x",
            ],
            "--in",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--max-retries",
                "5000",
            ],
            "--max-retries",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--max-retries",
                "-1",
            ],
            "-1",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--wait-time",
                "0",
            ],
            "--wait-time",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--callerid",
                "Room #5 <1>",
            ],
            "--callerid",
        ),
        (
            &["call", "--channel", "PJSIP/x", "--context", "c;x"],
            "--context",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--account",
                "a\nb",
            ],
            "--account",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--application",
                "Wait",
            ],
            "--context",
        ),
        (&["call", "--channel", "PJSIP/x"], "--context"),
        (&["call", "--context", "c"], "--channel"),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--application",
                "Wait",
                "--extension",
                "s",
            ],
            "--extension",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--at",
                "2001-01-01 00:00",
            ],
            "past",
        ),
        (
            &[
                "call",
                "--channel",
                "PJSIP/x",
                "--context",
                "c",
                "--in",
                "5s",
                "--at",
                "2030-01-01 00:00",
            ],
            "--in",
        ),
        (&["cancel", "../etc/passwd"], "not a file name"),
        (&["frobnicate"], "frobnicate"),
    ];
    for (args, want) in cases {
        let o = sp.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
        assert!(sp.outgoing().is_empty(), "{args:?}");
    }
    assert!(fs::read_dir(sp.dir.path().join("tmp"))
        .unwrap()
        .next()
        .is_none());
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    Utc.from_utc_datetime(
        &NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap(),
    )
    .timestamp()
}

#[test]
fn mtime_is_the_schedule_for_every_at_form() {
    let sp = Sp::new();
    // "call me at 19:18:55 on 2030-07-09" (the seed's example, moved into
    // the future), local time UTC+4 where a form has no offset
    let want = utc(2030, 7, 9, 15, 18, 55);
    for (i, at) in [
        "2030-07-09T19:18:55+04:00",
        "2030-07-09 19:18:55",
        "203007091918.55",
        "3007091918.55",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("at{i}.call");
        let o = sp.wait_call("Etc/GMT-4", &["--at", at, "--name", &name, "--json"]);
        assert_eq!(o.status.code(), Some(0), "{at}: {}", err(&o));
        assert_eq!(sp.mtime(&name), want, "{at}");
        let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
        assert_eq!(v["unix"], want, "{at}");
        assert_eq!(v["status"], "queued");
    }
    // without seconds
    let o = sp.wait_call("UTC", &["--at", "2030-07-09 19:18", "--name", "nosec"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(sp.mtime("nosec"), utc(2030, 7, 9, 19, 18, 0));
    // --in
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let o = sp.wait_call("UTC", &["--in", "1h30m", "--name", "in"]);
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(o.status.code(), Some(0));
    let m = sp.mtime("in");
    assert!(
        m >= before + 5400 && m <= after + 5400,
        "{m} {before} {after}"
    );
    // no schedule: now
    let o = sp.wait_call("UTC", &["--name", "now"]);
    assert_eq!(o.status.code(), Some(0));
    let m = sp.mtime("now");
    assert!(m >= before && m <= after + 1);
    // past with --allow-past
    let o = sp.wait_call(
        "UTC",
        &["--at", "2001-01-01 00:00", "--allow-past", "--name", "past"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(sp.mtime("past"), utc(2001, 1, 1, 0, 0, 0));
}

#[test]
fn dst_gap_and_overlap_are_resolved_and_said() {
    let sp = Sp::new();
    // Europe/Berlin, 2030-03-31: 02:00 -> 03:00; 02:30 does not exist
    let o = sp.wait_call(
        "Europe/Berlin",
        &["--at", "2030-03-31 02:30", "--name", "gap"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(err(&o).contains("does not exist"), "{}", err(&o));
    assert_eq!(sp.mtime("gap"), utc(2030, 3, 31, 1, 30, 0)); // 03:30 CEST
                                                             // 2030-10-27: 03:00 -> 02:00; 02:30 happens twice, the first is taken
    let o = sp.wait_call(
        "Europe/Berlin",
        &["--at", "2030-10-27 02:30", "--name", "overlap"],
    );
    assert_eq!(o.status.code(), Some(0));
    assert!(err(&o).contains("happens twice"), "{}", err(&o));
    assert_eq!(sp.mtime("overlap"), utc(2030, 10, 27, 0, 30, 0)); // 02:30 CEST
}

#[test]
fn a_pending_name_is_a_duplicate() {
    let sp = Sp::new();
    let args = [
        "call",
        "--channel",
        "Local/1@a",
        "--context",
        "c",
        "--name",
        "zabbix-event-42",
    ];
    assert_eq!(sp.run(&args).status.code(), Some(0));
    let before = sp.file("zabbix-event-42");
    let o = sp.run(&[
        "call",
        "--channel",
        "Local/2@b",
        "--context",
        "d",
        "--name",
        "zabbix-event-42",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(out(&o).contains("\"duplicate\""));
    assert_eq!(sp.file("zabbix-event-42"), before);
}

#[test]
fn check_reports_lines_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.call");
    fs::write(
        &good,
        "Channel: Local/1@a\nContext: c\nExtension: s\nPriority: 1\n",
    )
    .unwrap();
    let warn = dir.path().join("warn.call");
    fs::write(
        &warn,
        "Channel: Local/1@a\nApplication: Wait\nEarlyMedia: yes\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.call");
    fs::write(
        &bad,
        "Channel: Local/1@a\nCallerid: Room #5 <100>\nApplication: Wait\n",
    )
    .unwrap();
    let run = |files: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_autodial"))
            .arg("check")
            .args(files)
            .output()
            .unwrap()
    };
    let o = run(&[&good]);
    assert_eq!(o.status.code(), Some(0));
    assert!(out(&o).contains("good.call: ok"));
    let o = run(&[&good, &warn]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        out(&o).contains("warn.call:line 3: warning: unknown key \"EarlyMedia\""),
        "{}",
        out(&o)
    );
    let o = run(&[&good, &bad]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("bad.call:line 2: error:"), "{}", out(&o));
    let o = run(&[&dir.path().join("missing.call")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("missing.call"));
}

#[test]
fn list_and_cancel() {
    let sp = Sp::new();
    assert!(out(&sp.run(&["list"])).contains("no call files pending"));
    sp.run(&[
        "call",
        "--channel",
        "Local/1@a",
        "--context",
        "alert",
        "--in",
        "4m",
        "--name",
        "later",
    ]);
    sp.run(&[
        "call",
        "--channel",
        "PJSIP/2@trunk",
        "--application",
        "Playback",
        "--data",
        "beep",
        "--name",
        "now",
    ]);
    // a file Asterisk is retrying: the lines it appends
    fs::write(
        sp.dir.path().join("outgoing/retrying"),
        "Channel: Local/3@a\nContext: c\nExtension: s\nPriority: 1\nMaxRetries: 2\n\
         StartRetry: 1234 1 (1795667000)\nEndRetry: 1234 1 (1795667030)\n",
    )
    .unwrap();
    let o = sp.run(&["list"]);
    assert_eq!(o.status.code(), Some(0));
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("NAME"));
    let later = lines.iter().find(|l| l.starts_with("later")).unwrap();
    assert!(
        later.contains("in 3m5") || later.contains("in 4m0s"),
        "{later}"
    );
    assert!(later.contains("s@alert:1"));
    let retrying = lines.iter().find(|l| l.starts_with("retrying")).unwrap();
    assert!(retrying.trim_end().ends_with(" 1"), "{retrying}");
    let now = lines.iter().find(|l| l.starts_with("now")).unwrap();
    assert!(now.contains("Playback(beep)") && now.contains("PJSIP/2@trunk"));

    let v: serde_json::Value = serde_json::from_str(&out(&sp.run(&["list", "--json"]))).unwrap();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    let r = arr.iter().find(|x| x["name"] == "retrying").unwrap();
    assert_eq!(r["attempts"], 1);
    assert_eq!(r["channel"], "Local/3@a");
    let l = arr.iter().find(|x| x["name"] == "later").unwrap();
    assert!(l["in_seconds"].as_i64().unwrap() > 200);

    let o = sp.run(&["cancel", "later", "now"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(sp.outgoing(), ["retrying"]);
    let o = sp.run(&["cancel", "later", "retrying"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(sp.outgoing().is_empty());
    // a symlink in outgoing/ is removed itself, never its target
    let target = sp.dir.path().join("precious");
    fs::write(&target, "x").unwrap();
    std::os::unix::fs::symlink(&target, sp.dir.path().join("outgoing/link")).unwrap();
    assert_eq!(sp.run(&["cancel", "link"]).status.code(), Some(0));
    assert!(target.exists());
}

#[test]
fn help_is_complete() {
    for sub in ["call", "check", "list", "cancel"] {
        let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert!(out(&o).contains("Exit status"), "{sub}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .args(["call", "--help"])
        .output()
        .unwrap();
    for opt in [
        "--channel",
        "--context",
        "--extension",
        "--priority",
        "--application",
        "--data",
        "--callerid",
        "--max-retries",
        "--retry-time",
        "--wait-time",
        "--account",
        "--set",
        "--archive",
        "--at",
        "--in",
        "--allow-past",
        "--name",
        "--spool-dir",
        "--dry-run",
        "--json",
    ] {
        assert!(out(&o).contains(opt), "{opt}");
    }
}

#[test]
fn run_as_root_the_file_goes_to_the_owner_of_outgoing() {
    use std::os::unix::fs::MetadataExt;
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: nothing to hand over; not run");
        return;
    }
    let sp = Sp::new();
    let outgoing = sp.dir.path().join("outgoing");
    std::os::unix::fs::chown(&outgoing, Some(65534), Some(65534)).unwrap();
    let o = sp.wait_call("UTC", &["--name", "owned"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let m = fs::metadata(outgoing.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
}

#[test]
fn every_in_form_has_the_same_bound_and_no_overflow() {
    let sp = Sp::new();
    for bad in [
        "9999999999999",
        "9223372036854775808",
        "18446744073709000000",
        "316224001",
        "3661d",
        "87841h",
    ] {
        let o = sp.wait_call("UTC", &["--in", bad]);
        assert_eq!(o.status.code(), Some(2), "--in {bad}: {}", err(&o));
        assert!(err(&o).contains("3660 days"), "{bad}: {}", err(&o));
    }
    assert!(sp.outgoing().is_empty());
    let o = sp.wait_call("UTC", &["--in", "316224000", "--name", "far"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((sp.mtime("far") - now - 316_224_000).abs() <= 2);
}

#[test]
fn at_beyond_ten_years_or_before_1970_is_refused() {
    let sp = Sp::new();
    for bad in [
        "10000-01-01T00:00:00Z",
        "2999-01-01 00:00",
        "1969-12-31T23:59:59Z",
    ] {
        let o = sp.wait_call("UTC", &["--at", bad, "--allow-past"]);
        assert_eq!(o.status.code(), Some(2), "--at {bad}: {}", err(&o));
    }
    assert!(sp.outgoing().is_empty());
}

#[test]
fn list_shows_an_mtime_outside_the_calendar_and_goes_on() {
    let sp = Sp::on_tmpfs();
    let o = sp.wait_call("UTC", &["--name", "normal", "--in", "1h"]);
    assert_eq!(o.status.code(), Some(0));
    let odd = sp.dir.path().join("outgoing/odd.call");
    fs::write(&odd, "Channel: Local/1@a\nApplication: Wait\n").unwrap();
    let f = fs::File::options().write(true).open(&odd).unwrap();
    let far = UNIX_EPOCH + std::time::Duration::from_secs(99_999_999_999_999);
    f.set_modified(far).unwrap();
    assert_eq!(fs::metadata(&odd).unwrap().modified().unwrap(), far);
    let o = sp.run(&["list"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let t = out(&o);
    assert!(t.contains("normal"), "{t}");
    assert!(
        t.contains("odd.call") && t.contains("@99999999999999"),
        "{t}"
    );
    let o = sp.run(&["list", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let odd = v
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "odd.call")
        .unwrap();
    assert_eq!(odd["unix"], 99_999_999_999_999i64);
    assert!(odd["scheduled"].is_null());
}

#[test]
fn list_escapes_control_bytes_in_names_and_values() {
    let sp = Sp::new();
    let dir = sp.dir.path().join("outgoing");
    fs::write(
        dir.join("a\nforged-row 2030-01-01"),
        "Channel: Local/\x1b[2J\x1b]0;owned\x07@a\nApplication: Wait\n",
    )
    .unwrap();
    fs::write(
        dir.join("b\u{202e}llac.exe"),
        "Channel: Local/1@a\u{9b}31m\nApplication: Wait\n",
    )
    .unwrap();
    for args in [&["list"][..], &["list", "--json"]] {
        let o = sp.run(args);
        assert_eq!(o.status.code(), Some(0));
        let t = out(&o);
        for raw in ["\x1b", "\x07", "\u{202e}", "\u{9b}", "a\nforged"] {
            assert!(!t.contains(raw), "{args:?}: raw {raw:?} in {t:?}");
        }
        assert!(t.contains("\\x1b[2J"), "{t}");
        assert!(t.contains("\\u{202e}"), "{t}");
    }
    let o = sp.run(&["list"]);
    // one header and one row per file
    assert_eq!(out(&o).lines().count(), 3, "{}", out(&o));
}

#[test]
fn check_reads_whole_regular_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.call");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .arg("check")
        .arg(&fifo)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("is a FIFO, not a regular file"),
        "{}",
        err(&o)
    );
    // past 1 MiB: an error beyond that point is still found
    let big = dir.path().join("big.call");
    let mut text = "Channel: Local/1@a\nApplication: Wait\n".to_string();
    while text.len() < (2 << 20) {
        text.push_str("; a comment line to pad the file out past a mebibyte\n");
    }
    text.push_str("WaitTime: 0\n");
    fs::write(&big, &text).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .arg("check")
        .arg(&big)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("WaitTime 0 is below 1"), "{}", out(&o));
    // past the stated bound: an error saying so
    let huge = dir.path().join("huge.call");
    let f = fs::File::create(&huge).unwrap();
    f.set_len(17 << 20).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .arg("check")
        .arg(&huge)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("larger than 16 MiB"), "{}", err(&o));
}

#[test]
fn run_as_root_acts_as_the_spool_owner_and_never_follows_a_symlinked_outgoing() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: nothing to switch from; not run");
        return;
    }
    let sp = Sp::new();
    let root = sp.dir.path();
    fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
    for d in [root.to_path_buf(), root.join("outgoing"), root.join("tmp")] {
        std::os::unix::fs::chown(&d, Some(65534), Some(65534)).unwrap();
    }
    // the spool's owner writes the file, as that owner
    let o = sp.wait_call("UTC", &["--name", "mine"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let m = fs::metadata(root.join("outgoing/mine")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    // outgoing/ swapped for a link to a directory anyone may write (as
    // /etc/profile.d is to root): refused, nothing written there
    let victim = tempfile::tempdir().unwrap();
    fs::set_permissions(victim.path(), fs::Permissions::from_mode(0o777)).unwrap();
    fs::remove_file(root.join("outgoing/mine")).unwrap();
    fs::remove_dir(root.join("outgoing")).unwrap();
    std::os::unix::fs::symlink(victim.path(), root.join("outgoing")).unwrap();
    let o = sp.wait_call("UTC", &["--name", "profile.sh"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("symbolic link"), "{}", err(&o));
    assert_eq!(fs::read_dir(victim.path()).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    // cancel through the link is refused too
    fs::write(victim.path().join("keep"), "x").unwrap();
    let o = sp.run(&["cancel", "keep"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(victim.path().join("keep").exists());
}

#[test]
fn generated_man_pages_and_completions_cover_every_subcommand() {
    let d = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .arg("generate-docs")
        .arg(d.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let main = fs::read_to_string(d.path().join("man/autodial.1")).unwrap();
    for sub in ["call", "check", "list", "cancel", "alert", "serve"] {
        assert!(main.contains(&format!("autodial\\-{sub}(1)")), "{sub}");
        assert!(
            d.path().join(format!("man/autodial-{sub}.1")).is_file(),
            "{sub}"
        );
    }
    assert!(
        !main.contains("generate"),
        "the hidden command stays hidden"
    );
    let cb = fs::read_to_string(d.path().join("man/callback.8")).unwrap();
    assert!(
        cb.contains("CALLBACK_STATUS") && cb.contains(".TH callback 8"),
        "{cb}"
    );
    let al = fs::read_to_string(d.path().join("man/alert.8")).unwrap();
    assert!(al.contains("ALERT_STATUS") && al.contains(".TH alert 8"));
    for f in ["autodial.bash", "_autodial", "autodial.fish"] {
        let c = fs::read_to_string(d.path().join("completions").join(f)).unwrap();
        assert!(c.contains("alert") && c.contains("serve"), "{f}");
    }
}
