//! Torture: `callback` killed at random points, a full disk, a peer that
//! never answers.

mod common;
use common::names;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agi_callback::callfile::parse;

const BIN: &str = env!("CARGO_BIN_EXE_callback");

fn env_for(number: &str) -> Vec<u8> {
    let base = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/asterisk-22.10/env-hangup.txt"
    ))
    .unwrap();
    let mut v = base
        .replace(
            "agi_callerid: 89105647899",
            &format!("agi_callerid: {number}"),
        )
        .into_bytes();
    v.extend_from_slice(b"200 result=1\n200 result=1\n200 result=1\n");
    v
}

/// Runs `callback` to the end for `number`.
fn run(cfg: &Path, number: &str) -> std::process::Output {
    Command::new(BIN)
        .env("CALLBACK_CONFIG", cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(&env_for(number))?;
            c.wait_with_output()
        })
        .unwrap()
}

fn setup(spool: &Path, log: &Path, permit: &[String]) -> PathBuf {
    fs::create_dir_all(spool.join("outgoing")).unwrap();
    fs::create_dir_all(spool.join("tmp")).unwrap();
    let cfg = spool.parent().unwrap().join("callback.json");
    fs::write(
        &cfg,
        serde_json::json!({
            "permit": permit,
            "call": {"channel": "PJSIP/{number}@sip-provider", "context": "callback-menu",
                     "variables": {"CALLBACK_NUMBER": "{number}", "PAD": "x".repeat(800)}},
            "spool_dir": spool, "log_file": log,
        })
        .to_string(),
    )
    .unwrap();
    cfg
}

/// Every file in outgoing/ is complete and valid, one per number at most.
fn assert_outgoing_sound(spool: &Path) -> usize {
    let files = names(&spool.join("outgoing"));
    for n in &files {
        let bytes = fs::read(spool.join("outgoing").join(n)).unwrap();
        let p = parse(&bytes);
        assert!(!p.has_errors(), "{n}: {:?}", p.diagnostics);
        let call = p.call.expect("a call");
        assert_eq!(call.variables.len(), 2, "{n} is incomplete");
        assert_eq!(n, &format!("callback-{}.call", call.variables[0].1));
    }
    files.len()
}

#[test]
fn kill_9_at_random_points_leaves_only_complete_files() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let numbers: Vec<String> = (0..40).map(|i| format!("8910564{:04}", i)).collect();
    let cfg = setup(&spool, &dir.path().join("callback.log"), &numbers);
    // A cheap pseudo-random sequence, fixed so a failure can be replayed.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut kills = 0;
    for i in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let number = &numbers[(x % 40) as usize];
        let mut child = Command::new(BIN)
            .env("CALLBACK_CONFIG", &cfg)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(&env_for(number));
        std::thread::sleep(Duration::from_micros(x % 3000));
        if child.kill().is_ok() {
            kills += 1;
        }
        drop(stdin);
        let _ = child.wait();
        if i % 50 == 0 {
            assert_outgoing_sound(&spool);
        }
    }
    let files = assert_outgoing_sound(&spool);
    // Litter, if any, is ours and recognisable.
    let litter = names(&spool.join("tmp"));
    for n in &litter {
        assert!(n.starts_with("agi-callback-stage."), "{n}");
    }
    // Age it by two minutes (its name carries its creation time): the next
    // run removes it all.
    let old = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        - 120_000_000_000;
    for (k, n) in litter.iter().enumerate() {
        fs::rename(
            spool.join("tmp").join(n),
            spool
                .join("tmp")
                .join(format!("agi-callback-stage.{old}.1.{k}")),
        )
        .unwrap();
    }
    let out = run(&cfg, "89105640000");
    assert_eq!(out.status.code(), Some(0));
    assert!(names(&spool.join("tmp")).is_empty());
    eprintln!(
        "{kills} kills of 300 runs; {files} complete files; {} staging files cleaned",
        litter.len()
    );
    // Every number queued at most once: one file name per number, and the
    // pending ones are exactly DUPLICATE now.
    for n in names(&spool.join("outgoing")) {
        let number = n.trim_start_matches("callback-").trim_end_matches(".call");
        let out = run(&cfg, number);
        assert!(String::from_utf8_lossy(&out.stdout).contains("\"DUPLICATE\""));
    }
}

#[test]
fn disk_full_is_error_with_nothing_partial() {
    if unsafe { libc::geteuid() } != 0 {
        // Mounting a small tmpfs needs root; CI runs as root.
        eprintln!(
            "disk_full_is_error_with_nothing_partial: not root, cannot mount a tmpfs; not run"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("spool");
    fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let cfg = setup(
        &mnt,
        &dir.path().join("callback.log"),
        &["89105647899".to_string()],
    );
    // fill it
    let mut f = fs::File::create(mnt.join("filler")).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.flush();
    let out = run(&cfg, "89105647899");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("CALLBACK_STATUS \"ERROR\""), "{text}");
    assert!(text.contains("No space left on device"), "{text}");
    assert!(names(&mnt.join("outgoing")).is_empty());
    assert!(names(&mnt.join("tmp")).is_empty());
    let log = fs::read_to_string(dir.path().join("callback.log")).unwrap();
    assert!(log.contains("89105647899 ERROR"), "{log}");
}

#[test]
fn a_silent_peer_does_not_keep_the_process_once_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let cfg = setup(
        &spool,
        &dir.path().join("callback.log"),
        &["89105647899".to_string()],
    );
    let mut child = Command::new(BIN)
        .env("CALLBACK_CONFIG", &cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // the env block, and then no reply at all
    let env = env_for("89105647899");
    let block_end = env.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    stdin.write_all(&env[..block_end]).unwrap();
    // it has decided (the file is there) and waits for the reply
    let t = Instant::now();
    while names(&spool.join("outgoing")).is_empty() && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        names(&spool.join("outgoing")),
        ["callback-89105647899.call"]
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still waiting for a reply"
    );
    drop(stdin); // Asterisk goes away
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert_eq!(st.code(), Some(0));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still alive after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
