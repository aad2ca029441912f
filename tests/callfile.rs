//! Call files: what render refuses, how pbx_spool's rules are read back,
//! and the spool's publish under concurrency and faults.

mod common;
use common::names;
use std::fs;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agi_callback::callfile::{
    parse, Action, CallFile, CallerId, Problem, PublishError, Severity, Spool, SpoolError,
};

fn base() -> CallFile {
    CallFile::new(
        "PJSIP/89161112233@sip-provider",
        Action::Extension {
            context: "monitoring-alert".into(),
            extension: "s".into(),
            priority: Some(1),
        },
    )
}

fn refused(cf: &CallFile, field: &str) -> Problem {
    let e = cf.render().expect_err("should be refused");
    assert_eq!(e.field, field, "{e}");
    e.problem
}

#[test]
fn every_rule_is_refused_naming_the_field() {
    let mut c = base();
    c.channel = "PJSIP".into();
    assert_eq!(refused(&c, "Channel"), Problem::BadChannel);
    c.channel = "PJSIP/a b".into();
    assert!(matches!(refused(&c, "Channel"), Problem::BadChannel));
    c.channel = "PJSIP/x;y".into();
    assert_eq!(refused(&c, "Channel"), Problem::Semicolon { offset: 7 });
    c.channel = "/x".into();
    assert_eq!(refused(&c, "Channel"), Problem::BadChannel);

    for (v, p) in [
        (
            "a\nApplication: System",
            Problem::ControlByte {
                offset: 1,
                byte: b'\n',
            },
        ),
        (
            "a\rb",
            Problem::ControlByte {
                offset: 1,
                byte: b'\r',
            },
        ),
        ("a\0b", Problem::ControlByte { offset: 1, byte: 0 }),
        (
            "a\tb",
            Problem::ControlByte {
                offset: 1,
                byte: b'\t',
            },
        ),
        (
            "a\x7fb",
            Problem::ControlByte {
                offset: 1,
                byte: 0x7f,
            },
        ),
        ("Room #5", Problem::HashAfterBlank { offset: 5 }),
        ("#5", Problem::HashAfterBlank { offset: 0 }),
        (" lead", Problem::OuterBlank),
        ("trail ", Problem::OuterBlank),
        ("", Problem::Empty),
        ("x;y", Problem::Semicolon { offset: 1 }),
    ] {
        let mut c = base();
        c.account = Some(v.into());
        assert_eq!(refused(&c, "Account"), p, "{v:?}");
    }
    let mut c = base();
    c.account = Some("a".repeat(1100));
    assert!(matches!(
        refused(&c, "Account"),
        Problem::LineTooLong { len: 1109 }
    ));
    c.account = Some("a".repeat(1022 - "Account: ".len()));
    assert!(c.render().is_ok(), "a line of exactly 1022 bytes is fine");
    c.account = Some("a".repeat(1023 - "Account: ".len()));
    assert!(c.render().is_err());

    let mut c = base();
    c.max_retries = Some(1001);
    assert!(matches!(
        refused(&c, "MaxRetries"),
        Problem::OutOfRange { .. }
    ));
    let mut c = base();
    c.retry_time = Some(0);
    assert!(matches!(
        refused(&c, "RetryTime"),
        Problem::OutOfRange { .. }
    ));
    let mut c = base();
    c.wait_time = Some(86401);
    assert!(matches!(
        refused(&c, "WaitTime"),
        Problem::OutOfRange { .. }
    ));
    let mut c = base();
    c.action = Action::Extension {
        context: "c".into(),
        extension: "s".into(),
        priority: Some(0),
    };
    assert!(matches!(
        refused(&c, "Priority"),
        Problem::OutOfRange { .. }
    ));
    c.action = Action::Extension {
        context: "c".into(),
        extension: "".into(),
        priority: None,
    };
    assert_eq!(refused(&c, "Extension"), Problem::Empty);
    c.action = Action::Application {
        application: "".into(),
        data: None,
    };
    assert_eq!(refused(&c, "Application"), Problem::Empty);

    for name in ["", "A=B", "A B", "A;B", "#A", "A(x=1)"] {
        let mut c = base();
        c.variables.push((name.into(), "v".into()));
        assert_eq!(refused(&c, "Set"), Problem::BadName, "{name:?}");
    }
    let mut c = base();
    c.callerid = Some(CallerId {
        name: Some("Evil\" <1>".into()),
        number: None,
    });
    assert!(matches!(refused(&c, "Callerid"), Problem::BadCallerId(_)));
    c.callerid = Some(CallerId {
        name: None,
        number: Some("12 34".into()),
    });
    assert!(matches!(refused(&c, "Callerid"), Problem::BadCallerId(_)));
    c.callerid = Some(CallerId {
        name: Some("Room #5".into()),
        number: Some("100".into()),
    });
    assert!(matches!(
        refused(&c, "Callerid"),
        Problem::HashAfterBlank { .. }
    ));
}

#[test]
fn semicolons_are_escaped_in_data_and_set_only() {
    let mut c = CallFile::new(
        "Local/1@autocaller",
        Action::Application {
            application: "Playback".into(),
            data: Some("a;b\\;c".into()),
        },
    );
    c.variables.push(("CDR(userfield)".into(), "x;y".into()));
    let text = c.render().unwrap();
    assert_eq!(
        text,
        "Channel: Local/1@autocaller\nApplication: Playback\nData: a\\;b\\\\;c\nSet: CDR(userfield)=x\\;y\n"
    );
    let parsed = parse(text.as_bytes());
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(parsed.call, Some(c));
}

#[test]
fn every_field_round_trips() {
    let mut c = base();
    c.callerid = Some(CallerId {
        name: Some("Иван Петров".into()),
        number: Some("+79105647899".into()),
    });
    c.max_retries = Some(2);
    c.retry_time = Some(60);
    c.wait_time = Some(30);
    c.account = Some("monitoring".into());
    c.variables = vec![
        ("ALERT_PROMPT".into(), "tt-somethingwrong&vm-goodbye".into()),
        ("__INHERITED".into(), "x=y=z".into()),
    ];
    c.archive = Some(true);
    c.always_delete = Some(false);
    c.codecs = Some("ulaw,alaw".into());
    c.early_media = Some(true);
    let text = c.render().unwrap();
    assert_eq!(
        text,
        "Channel: PJSIP/89161112233@sip-provider\n\
         Callerid: \"Иван Петров\" <+79105647899>\n\
         MaxRetries: 2\nRetryTime: 60\nWaitTime: 30\nAccount: monitoring\n\
         Context: monitoring-alert\nExtension: s\nPriority: 1\n\
         Set: ALERT_PROMPT=tt-somethingwrong&vm-goodbye\nSet: __INHERITED=x=y=z\n\
         Codecs: ulaw,alaw\nAlwaysDelete: no\nArchive: yes\nearly_media: yes\n"
    );
    assert_eq!(parse(text.as_bytes()).call, Some(c));
}

fn diag(text: &str) -> Vec<(usize, Severity, String)> {
    parse(text.as_bytes())
        .diagnostics
        .into_iter()
        .map(|d| (d.line, d.severity, d.message))
        .collect()
}

#[test]
fn parse_reads_like_pbx_spool() {
    // case-insensitive keys, last wins, comments, CRLF, blanks around values
    let p = parse(
        b"; a comment\r\nchannel: Local/1@a\r\nCHANNEL:   Local/2@b   \r\n# another\nApplication: Wait\nData: 5\n",
    );
    let call = p.call.unwrap();
    assert_eq!(call.channel, "Local/2@b");
    assert_eq!(p.diagnostics.len(), 1);
    assert_eq!(p.diagnostics[0].line, 3);
    assert_eq!(p.diagnostics[0].severity, Severity::Warning);

    // '#' after a blank truncates: an error, with the line
    let d = diag("Channel: Local/1@a\nCallerid: Room #5 <100>\nApplication: Wait\n");
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].0, d[0].1), (2, Severity::Error));
    assert!(d[0].2.contains("\"Callerid: Room\""), "{}", d[0].2);
    // unescaped ';' truncates
    let d = diag("Channel: Local/1@a\nApplication: Playback\nData: a;b\n");
    assert_eq!((d[0].0, d[0].1), (3, Severity::Error));
    // keys with stray blanks are ignored by Asterisk
    let d = diag(" Channel: Local/1@a\nApplication: Wait\n");
    assert!(d
        .iter()
        .any(|x| x.0 == 1 && x.1 == Severity::Error && x.2.contains("blanks")));
    assert!(d.iter().any(|x| x.2.contains("no Channel")));
    let d = diag("Channel : Local/1@a\nApplication: Wait\n");
    assert!(d.iter().any(|x| x.0 == 1 && x.2.contains("blanks")));
    // over-long line: skipped whole
    let long = format!(
        "Channel: Local/1@a\nApplication: Wait\nData: {}\n",
        "x".repeat(1020)
    );
    let d = diag(&long);
    assert!(d
        .iter()
        .any(|x| x.0 == 3 && x.1 == Severity::Error && x.2.contains("1026 bytes")));
    // unknown keys: warnings, with a hint
    let d = diag("Channel: Local/1@a\nApplication: Wait\nEarlyMedia: yes\nTimeout: 5\n");
    assert_eq!(d.len(), 2);
    assert!(d[0].2.contains("did you mean early_media"));
    assert_eq!((d[1].0, d[1].1), (4, Severity::Warning));
    // missing action, bad channel, no colon, Set without '=', bad number
    let d = diag("Channel: PJSIP\nSet: FOO\nWaitTime: soon\njunk\n");
    let lines: Vec<usize> = d
        .iter()
        .filter(|x| x.1 == Severity::Error)
        .map(|x| x.0)
        .collect();
    assert_eq!(lines, vec![1, 1, 2, 3, 4]);
    // extension without priority: the default is said
    let d = diag("Channel: Local/1@a\nContext: c\nExtension: s\n");
    assert_eq!(
        d,
        vec![(3, Severity::Warning, "no Priority: Asterisk uses 1".into())]
    );
}

#[test]
fn an_archived_file_reads_with_a_note_on_status() {
    // as Asterisk leaves it in outgoing_done/ with Archive: yes
    let text = "Channel: Local/1@a\nApplication: Wait\nArchive: yes\n\
                StartRetry: 4242 1 (1795667000)\nEndRetry: 4242 1 (1795667030)\n\
                Status: Completed\n";
    let p = parse(text.as_bytes());
    assert!(p.call.is_some() && !p.has_errors());
    assert_eq!(p.attempts, 1);
    assert_eq!(p.diagnostics.len(), 1);
    assert_eq!(
        (p.diagnostics[0].line, p.diagnostics[0].severity),
        (6, Severity::Warning)
    );
}

#[test]
fn retry_lines_count_attempts() {
    // as Asterisk appends them: Key: <pid> <retries> (<unix time>)
    let text = "Channel: Local/1@a\nApplication: Wait\nMaxRetries: 3\n\
                StartRetry: 4242 1 (1795667000)\nEndRetry: 4242 1 (1795667030)\n\
                StartRetry: 4242 2 (1795667330)\n";
    let p = parse(text.as_bytes());
    assert_eq!(p.attempts, 1);
    assert!(p.in_progress);
    // a StartRetry left open: under way, or copied back from outgoing_done/
    assert_eq!(p.diagnostics.len(), 1);
    assert_eq!(
        (p.diagnostics[0].line, p.diagnostics[0].severity),
        (6, Severity::Warning)
    );
    assert!(p.diagnostics[0].message.contains("never dials"));
    let p = parse(format!("{text}AbortRetry: 4242 2 (1795667340)\n").as_bytes());
    assert_eq!(p.attempts, 2);
    assert!(!p.in_progress);
    assert!(p.diagnostics.is_empty());
}

/// (line, severity, a piece of the message) of every diagnostic.
fn diags(text: &[u8]) -> Vec<(usize, Severity, String)> {
    parse(text)
        .diagnostics
        .into_iter()
        .map(|d| (d.line, d.severity, d.message))
        .collect()
}

fn has(d: &[(usize, Severity, String)], line: usize, sev: Severity, piece: &str) -> bool {
    d.iter()
        .any(|(l, s, m)| *l == line && *s == sev && m.contains(piece))
}

#[test]
fn check_reads_like_asterisk_22() {
    use Severity::{Error, Warning};
    let base = "Channel: Local/1@a\nContext: c\nExtension: s\nPriority: 1\n";
    // 16: after \; Asterisk 22 goes on with the very next byte
    let p = parse(format!("{base}Set: X=hello\\;;world\nData: a\\;b\\;c\n").as_bytes());
    let call = p.call.as_ref().unwrap();
    assert_eq!(call.variables, [("X".to_string(), "hello;".to_string())]);
    assert!(has(
        &diags(format!("{base}Set: X=hello\\;;world\n").as_bytes()),
        5,
        Error,
        "reads only \"Set: X=hello;\""
    ));
    let d = diags(b"Channel: Local/1@a\nApplication: Playback\nData: hello\\;;world\n");
    assert!(has(&d, 3, Error, "reads only \"Data: hello;\""), "{d:?}");
    // 17: a NUL cuts the line; its tail swallows the next one (Channel)
    let d = diags(b"Callerid: 1\0x\nChannel: Local/1@a\nApplication: Wait\n");
    assert!(has(&d, 1, Error, "NUL byte at column 12"), "{d:?}");
    assert!(has(&d, 1, Error, "line 2 with it"), "{d:?}");
    assert!(has(&d, 2, Error, "tail of line 1"), "{d:?}");
    assert!(has(&d, 1, Error, "no Channel"), "{d:?}");
    // 18: 0 is invalid for WaitTime and RetryTime
    let d = diags(format!("{base}WaitTime: 0\nRetryTime: 0\n").as_bytes());
    assert!(has(&d, 5, Error, "uses 45"), "{d:?}");
    assert!(has(&d, 6, Error, "uses 300"), "{d:?}");
    // 19: MaxRetries -1: deleted as expired, never dialled
    let d = diags(format!("{base}MaxRetries: -1\n").as_bytes());
    assert!(has(&d, 5, Error, "without ever dialling"), "{d:?}");
    // 20: Extension without Context runs in the channel's own context
    let p = parse(b"Channel: Local/1@a\nExtension: s\n");
    assert!(p.call.is_some());
    assert!(!p.has_errors());
    assert!(p
        .diagnostics
        .iter()
        .any(|d| d.message.contains("own context")));
    // 21: a malformed second Channel is ignored; the first stays
    let p = parse(format!("{base}Channel: garbage\n").as_bytes());
    assert_eq!(p.call.as_ref().unwrap().channel, "Local/1@a");
    let d = diags(format!("{base}Channel: garbage\n").as_bytes());
    assert!(has(&d, 5, Warning, "keeps the Channel of line 1"), "{d:?}");
    assert!(!d.iter().any(|(_, _, m)| m.contains("wins")), "{d:?}");
    // ... while a second well-formed one does win
    let d = diags(format!("{base}Channel: Local/2@a\n").as_bytes());
    assert!(has(&d, 5, Warning, "this line wins"), "{d:?}");
    // ... and "PJSIP/" (empty Dest) replaces it and makes the file invalid
    let p = parse(format!("{base}Channel: PJSIP/\n").as_bytes());
    assert!(p.call.is_none() && p.has_errors());
    // 22: SIP/ and Zap/ are gone in Asterisk 22
    for tech in ["SIP", "Zap", "sip"] {
        let d = diags(format!("Channel: {tech}/100\nApplication: Wait\n").as_bytes());
        assert!(has(&d, 1, Warning, "Asterisk 22 has no"), "{d:?}");
    }
    // 25: a Callerid name longer than the 79 bytes Asterisk keeps, cut
    // inside a two-byte character
    let name = format!("{}Ж", "a".repeat(78));
    let d = diags(format!("{base}Callerid: \"{name}\" <100>\n").as_bytes());
    let kept = format!("{}\u{fffd}", "a".repeat(78));
    assert!(
        has(
            &d,
            5,
            Warning,
            &format!("name is 80 bytes; Asterisk keeps 79: {kept:?}")
        ),
        "{d:?}"
    );
    assert!(diags(format!("{base}Callerid: \"{}\" <100>\n", "a".repeat(79)).as_bytes()).is_empty());
}

fn spool() -> (tempfile::TempDir, Spool) {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("outgoing")).unwrap();
    fs::create_dir(d.path().join("tmp")).unwrap();
    let s = Spool::new(d.path());
    (d, s)
}

#[test]
fn publish_sets_mode_and_schedule_and_refuses_to_clobber() {
    let (d, s) = spool();
    let at = UNIX_EPOCH + Duration::from_secs(4_000_000_000);
    let path = s.publish_call("a.call", &base(), at).unwrap();
    let meta = fs::metadata(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(meta.modified().unwrap(), at);
    assert_eq!(fs::read_to_string(&path).unwrap(), base().render().unwrap());
    let other = CallFile::new("Local/2@x", base().action);
    match s.publish_call("a.call", &other, SystemTime::now()) {
        Err(PublishError::AlreadyPending(p)) => assert_eq!(p, path),
        r => panic!("{r:?}"),
    }
    // the pending call is untouched, nothing staged remains
    assert_eq!(fs::read_to_string(&path).unwrap(), base().render().unwrap());
    assert!(names(&d.path().join("tmp")).is_empty());
    let s2 = Spool::new(d.path()).with_mode(0o600);
    let p2 = s2
        .publish_call("b.call", &base(), SystemTime::now())
        .unwrap();
    assert_eq!(
        fs::metadata(p2).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn schedule_from_a_chrono_time_in_any_zone() {
    use chrono::TimeZone;
    let (d, s) = spool();
    let tz = chrono::FixedOffset::east_opt(3 * 3600).unwrap();
    let at = tz.with_ymd_and_hms(2030, 7, 9, 19, 18, 55).unwrap();
    let p = s.publish_call_at("z.call", &base(), &at).unwrap();
    let m = fs::metadata(p).unwrap().modified().unwrap();
    assert_eq!(
        m.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64,
        at.timestamp()
    );
    assert_eq!(names(&d.path().join("outgoing")), ["z.call"]);
}

#[test]
fn bad_names_and_bad_files_write_nothing() {
    let (d, s) = spool();
    for n in ["", ".hidden", "../x", "a/b", "..", "a b"] {
        assert!(matches!(
            s.publish(n, b"x", SystemTime::now()),
            Err(PublishError::BadName(_))
        ));
        assert!(matches!(s.cancel(n), Err(SpoolError::BadName(_))));
    }
    let mut bad = base();
    bad.account = Some("x\ny".into());
    assert!(matches!(
        s.publish_call("c.call", &bad, SystemTime::now()),
        Err(PublishError::Render(_))
    ));
    assert!(names(&d.path().join("outgoing")).is_empty());
    assert!(names(&d.path().join("tmp")).is_empty());
}

#[test]
fn missing_dirs_are_clear_errors() {
    let (d, s) = spool();
    fs::remove_dir(d.path().join("tmp")).unwrap();
    let e = s.publish("a", b"x", SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("staging directory"), "{e}");
    assert!(e.to_string().contains("/tmp"), "{e}");
    assert!(names(&d.path().join("outgoing")).is_empty());
    let (d, s) = spool();
    fs::remove_dir(d.path().join("outgoing")).unwrap();
    let e = s.publish("a", b"x", SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("outgoing"), "{e}");
    assert!(names(&d.path().join("tmp")).is_empty());
}

#[test]
fn cross_filesystem_staging_is_refused() {
    // tmp/ on a filesystem of its own (a tmpfs mounted there; a symlink to
    // elsewhere is refused before, as a symlink)
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot mount a second filesystem; not run");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join("outgoing")).unwrap();
    let tmp = d.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let c = |s: &str| std::ffi::CString::new(s).unwrap();
    let target = c(tmp.to_str().unwrap());
    let rc = unsafe {
        libc::mount(
            c("tmpfs").as_ptr(),
            target.as_ptr(),
            c("tmpfs").as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    let s = Spool::new(d.path());
    let r = s.publish("a", b"x", SystemTime::now());
    let left = (names(&d.path().join("outgoing")), names(&tmp));
    unsafe { libc::umount(target.as_ptr()) };
    assert!(matches!(r, Err(PublishError::CrossDevice { .. })), "{r:?}");
    assert!(left.0.is_empty() && left.1.is_empty(), "{left:?}");
}

#[test]
fn fifty_threads_one_name_one_winner() {
    let (d, s) = spool();
    let s = Arc::new(s);
    let barrier = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (s, b) = (s.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = base();
                c.account = Some(format!("t{i}"));
                b.wait();
                s.publish_call("same.call", &c, SystemTime::now())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let dup = results
        .iter()
        .filter(|r| matches!(r, Err(PublishError::AlreadyPending(_))))
        .count();
    assert_eq!((ok, dup), (1, 49));
    assert_eq!(names(&d.path().join("outgoing")), ["same.call"]);
    assert!(names(&d.path().join("tmp")).is_empty());
    let p = parse(&fs::read(d.path().join("outgoing/same.call")).unwrap());
    assert!(p.call.is_some() && !p.has_errors());
}

#[test]
fn fifty_processes_one_name_one_winner() {
    let (d, _) = spool();
    let children: Vec<_> = (0..50)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_autodial"))
                .args(["--spool-dir"])
                .arg(d.path())
                .args([
                    "call",
                    "--channel",
                    "Local/1@autocaller",
                    "--context",
                    "monitoring-alert",
                    "--name",
                    "same.call",
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|mut c| c.wait().unwrap().code().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|&&c| c == 0).count(), 1);
    assert_eq!(codes.iter().filter(|&&c| c == 3).count(), 49);
    assert_eq!(names(&d.path().join("outgoing")), ["same.call"]);
    assert!(names(&d.path().join("tmp")).is_empty());
}

#[test]
fn kill_9_mid_publish_leaves_only_complete_files() {
    let (d, _) = spool();
    let mut c = base();
    c.variables = (0..20)
        .map(|i| (format!("V{i}"), "x".repeat(200)))
        .collect();
    let mut killed = 0;
    for i in 0..200u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_autodial"))
            .arg("--spool-dir")
            .arg(d.path())
            .args(["call", "--channel", "PJSIP/89161112233@sip-provider"])
            .args([
                "--context",
                "monitoring-alert",
                "--name",
                &format!("k{i}.call"),
            ])
            .args(
                c.variables
                    .iter()
                    .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // kill at a different point of the run each time (0..~4 ms)
        std::thread::sleep(Duration::from_micros((i * 37) % 4000));
        if child.kill().is_ok() {
            killed += 1;
        }
        let _ = child.wait();
    }
    assert!(killed > 0);
    let mut seen = 0;
    for n in names(&d.path().join("outgoing")) {
        let bytes = fs::read(d.path().join("outgoing").join(&n)).unwrap();
        let p = parse(&bytes);
        assert!(!p.has_errors(), "{n}: {:?}", p.diagnostics);
        let call = p.call.unwrap();
        assert_eq!(call.variables.len(), 20, "{n} incomplete");
        seen += 1;
    }
    // staging litter may remain from the kills; it is ours and recognisable
    for n in names(&d.path().join("tmp")) {
        assert!(n.starts_with("agi-callback-stage."), "{n}");
    }
    eprintln!("{killed} kills, {seen} complete files published");
}

#[test]
fn pending_lists_and_cancel_removes() {
    let (d, s) = spool();
    let later = SystemTime::now() + Duration::from_secs(600);
    s.publish_call("later.call", &base(), later).unwrap();
    s.publish_call("now.call", &base(), SystemTime::now())
        .unwrap();
    fs::write(
        d.path().join("outgoing/retrying.call"),
        "Channel: Local/1@a\nApplication: Wait\nStartRetry: 1 1 (1)\nEndRetry: 1 1 (2)\n",
    )
    .unwrap();
    // its own schedule, after now.call's (a written file's mtime is the
    // kernel's coarse clock, which may lag the precise one set above)
    fs::File::options()
        .write(true)
        .open(d.path().join("outgoing/retrying.call"))
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(1))
        .unwrap();
    let p = s.pending().unwrap();
    let list: Vec<(&str, u32)> = p
        .iter()
        .map(|x| (x.name.as_str(), x.parsed.as_ref().unwrap().attempts))
        .collect();
    assert_eq!(
        list,
        [("now.call", 0), ("retrying.call", 1), ("later.call", 0)]
    );
    assert_eq!(p[2].scheduled, {
        // mtime precision is the filesystem's; compare to the second
        let m = fs::metadata(d.path().join("outgoing/later.call")).unwrap();
        m.modified().unwrap()
    });
    s.cancel("now.call").unwrap();
    assert!(matches!(s.cancel("now.call"), Err(SpoolError::NotFound(_))));
    assert_eq!(
        names(&d.path().join("outgoing")),
        ["later.call", "retrying.call"]
    );
}

#[test]
fn read_only_outgoing_is_an_error_with_nothing_left() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let (d, _) = spool();
    // root ignores permissions: run the publisher as nobody then
    let root = unsafe { libc::geteuid() } == 0;
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(d.path().join("tmp"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(d.path().join("outgoing"), fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_autodial"));
    cmd.arg("--spool-dir").arg(d.path()).args([
        "call",
        "--channel",
        "Local/1@a",
        "--application",
        "Wait",
        "--name",
        "ro.call",
    ]);
    if root {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outgoing"), "{err}");
    assert!(names(&d.path().join("outgoing")).is_empty());
    assert!(names(&d.path().join("tmp")).is_empty());
}
