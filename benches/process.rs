//! Whole-process benchmarks: `callback` and `autodial` run the way Asterisk
//! and a monitoring system run them, against a floor: a minimal C program
//! that only reads the env block and exits (built here with `cc`).
//!
//! Run: `cargo bench --bench process` (prints a Markdown table; numbers in
//! docs/operations.md). Wall time is measured around spawn..wait; peak RSS is the
//! child's `ru_maxrss` from `wait4`. Linux carries the spawning image's
//! high-water mark over `exec`, so that figure is an upper bound that
//! includes this process's own resident pages at spawn time; the floor row,
//! measured the same way, is the baseline.

use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const FLOOR_C: &str = r#"
#include <stdio.h>
#include <string.h>
int main(void) {
    char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        if (strcmp(line, "\n") == 0) break;
    }
    return 0;
}
"#;

#[derive(Clone)]
struct Sample {
    wall: Duration,
    rss_kib: i64,
}

/// Spawns `cmd` with `input` on stdin, waits with wait4, returns wall time
/// and peak RSS. Panics when the exit status is not `want`.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_once(cmd: &mut Command, input: &[u8], want: i32) -> Sample {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
    }
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    assert_eq!(r, pid);
    let st = std::process::ExitStatus::from_raw(status);
    assert_eq!(st.code(), Some(want), "{cmd:?}");
    Sample {
        wall,
        rss_kib: ru.ru_maxrss,
    }
}

struct Stats {
    median_ms: f64,
    p90_ms: f64,
    rss_kib: i64,
}

fn stats(mut s: Vec<Sample>) -> Stats {
    s.sort_by_key(|x| x.wall);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Stats {
        median_ms: ms(s[s.len() / 2].wall),
        p90_ms: ms(s[s.len() * 9 / 10].wall),
        rss_kib: s.iter().map(|x| x.rss_kib).max().unwrap_or(0),
    }
}

fn env_block(number: &str) -> Vec<u8> {
    let base = fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/asterisk-22.10/env-hangup.txt"
    ))
    .unwrap();
    let text = String::from_utf8(base).unwrap();
    let mut v = text
        .replace(
            "agi_callerid: 89105647899",
            &format!("agi_callerid: {number}"),
        )
        .into_bytes();
    for _ in 0..4 {
        v.extend_from_slice(b"200 result=1\n");
    }
    v
}

struct Spool {
    root: PathBuf,
}

impl Spool {
    fn new(root: &Path) -> Spool {
        let _ = fs::remove_dir_all(root);
        fs::create_dir_all(root.join("outgoing")).unwrap();
        fs::create_dir_all(root.join("tmp")).unwrap();
        Spool {
            root: root.to_path_buf(),
        }
    }
    fn config(&self, permit: &str, extra: &str) -> PathBuf {
        let p = self.root.join("callback.json");
        fs::write(
            &p,
            format!(
                r#"{{"permit": {permit}, "rewrite": [{{"prefix": "+7", "replace": "8"}}],
                "call": {{"channel": "PJSIP/{{number}}@sip-provider", "context": "callback-menu",
                          "callerid": "\"Callback\" <84955556677>", "variables": {{"CALLBACK_NUMBER": "{{number}}"}}}},
                "spool_dir": "{}", "log_file": "{}"{extra}}}"#,
                self.root.display(),
                self.root.join("callback.log").display()
            ),
        )
        .unwrap();
        p
    }
    fn outgoing_count(&self) -> usize {
        fs::read_dir(self.root.join("outgoing")).unwrap().count()
    }
    fn clear_outgoing(&self) {
        for e in fs::read_dir(self.root.join("outgoing")).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
}

fn main() {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let work = target.join("bench-work");
    fs::create_dir_all(&work).unwrap();
    // The release binaries, as shipped.
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bins", "-q"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(st.success());
    let callback = target.join("release/callback");
    // The optional static build (docs/operations.md: "Static build"), for comparison.
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let st = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--bin",
            "callback",
            "--bin",
            "alert",
            "-q",
            "--target",
            &triple,
        ])
        .arg("--target-dir")
        .arg(target.join("static"))
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(st.success());
    let callback_static = target.join("static").join(&triple).join("release/callback");
    let autodial = target.join("release/autodial");
    let floor_src = work.join("floor.c");
    let floor = work.join("floor");
    fs::write(&floor_src, FLOOR_C).unwrap();
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&floor)
        .arg(&floor_src)
        .status()
        .expect("cc (gcc) is needed for the floor program");
    assert!(st.success());

    let n: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let tmpfs = Path::new("/dev/shm");
    let base = if tmpfs.is_dir() {
        tmpfs.join("agi-callback-bench")
    } else {
        work.join("spool")
    };
    let input = env_block("89105647899");
    // BENCH_ONLY=oncall: only the on-call table (the rest takes minutes)
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("oncall") => return oncall(&base, &target, n),
        Ok("heartbeat") => return heartbeats(&base, &target, &triple, &floor, n),
        Ok("line") => return line(&base, &target, &triple, &floor, n),
        _ => {}
    }

    println!("| what | median ms | p90 ms | peak RSS KiB | runs |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, s: &Stats, runs: usize| {
        println!(
            "| {what} | {:.3} | {:.3} | {} | {runs} |",
            s.median_ms, s.p90_ms, s.rss_kib
        );
    };

    // Interleave floor and callback runs so both see the same machine state.
    let spool = Spool::new(&base.join("small"));
    let cfg = spool.config(r#"["89105647899","89105640001","89105640002","89105640003","89105640004","89105640005","89105640006","89105640007","89105640008","89105640009"]"#, "");
    let (mut fl, mut cb, mut cs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        fl.push(run_once(&mut Command::new(&floor), &input, 0));
        spool.clear_outgoing();
        cb.push(run_once(
            Command::new(&callback).env("CALLBACK_CONFIG", &cfg),
            &input,
            0,
        ));
        assert_eq!(spool.outgoing_count(), 1, "QUEUED each time");
        spool.clear_outgoing();
        cs.push(run_once(
            Command::new(&callback_static).env("CALLBACK_CONFIG", &cfg),
            &input,
            0,
        ));
        assert_eq!(spool.outgoing_count(), 1, "QUEUED each time");
    }
    let floor_stats = stats(fl);
    let cb_stats = stats(cb);
    row("floor: C program reading the env block", &floor_stats, n);
    row(
        "callback QUEUED, spool on tmpfs (10-number permit list)",
        &cb_stats,
        n,
    );
    let cs_stats = stats(cs);
    row(
        "callback QUEUED, static build, spool on tmpfs",
        &cs_stats,
        n,
    );

    // The same with the spool on the disk under target/: fsync is real.
    let disk = Spool::new(&work.join("disk-spool"));
    let dcfg = disk.config(r#"["89105647899"]"#, "");
    let mut d = Vec::new();
    for _ in 0..n {
        disk.clear_outgoing();
        d.push(run_once(
            Command::new(&callback).env("CALLBACK_CONFIG", &dcfg),
            &input,
            0,
        ));
    }
    let disk_stats = stats(d);
    row(
        "callback QUEUED, spool on disk (fsync of file and dir)",
        &disk_stats,
        n,
    );

    // Denied, small list vs 100,000-number permit_file (the worst case).
    let denied = env_block("89990000000");
    let mut small = Vec::new();
    for _ in 0..n {
        small.push(run_once(
            Command::new(&callback).env("CALLBACK_CONFIG", &cfg),
            &denied,
            0,
        ));
    }
    // permit_file of 10, 100,000 and 10,000,000 numbers: the first read
    // on every call, the others through the index built on the first call.
    let sizes = [10u64, 100_000, 10_000_000];
    let mut lists = Vec::new();
    for &count in &sizes {
        let sp = Spool::new(&base.join(format!("permit-{count}")));
        // Written in small pieces: the bench keeps its own footprint small,
        // as a child's ru_maxrss starts from the spawning process's.
        {
            let mut w =
                std::io::BufWriter::new(fs::File::create(sp.root.join("permit.txt")).unwrap());
            for i in 0..count {
                writeln!(w, "89{:09}", i * 7).unwrap();
            }
            w.flush().unwrap();
        }
        let cfg = sp.config(
            "[]",
            &format!(
                r#", "permit_file": "{}""#,
                sp.root.join("permit.txt").display()
            ),
        );
        // The first call after a change builds the index (when it is used).
        let first = run_once(
            Command::new(&callback).env("CALLBACK_CONFIG", &cfg),
            &denied,
            0,
        );
        let idx = sp.root.join("callback-state/permit.idx");
        let idx_size = fs::metadata(&idx).map(|m| m.len()).ok();
        println!(
            "<!-- permit_file {count}: {} bytes, first call {:.1} ms, peak RSS {} KiB, index {} -->",
            fs::metadata(sp.root.join("permit.txt")).unwrap().len(),
            first.wall.as_secs_f64() * 1000.0,
            first.rss_kib,
            idx_size.map_or("none (read on each call)".to_string(), |n| format!("{n} bytes"))
        );
        lists.push((count, sp, cfg, first, idx_size));
    }
    let mut per: Vec<Vec<Sample>> = vec![Vec::new(); sizes.len()];
    for _ in 0..n {
        for (k, (_, _, cfg, _, _)) in lists.iter().enumerate() {
            per[k].push(run_once(
                Command::new(&callback).env("CALLBACK_CONFIG", cfg),
                &denied,
                0,
            ));
        }
    }
    let small = stats(small);
    row("callback DENIED, 10-number permit list", &small, n);
    let per: Vec<Stats> = per.into_iter().map(stats).collect();
    for ((count, ..), st) in lists.iter().zip(&per) {
        row(
            &format!("callback DENIED, permit_file of {count} numbers"),
            st,
            n,
        );
    }
    // A permitted number deep in the 10,000,000 list is QUEUED.
    let (_, big, bigcfg, _, _) = &lists[2];
    let mut q = Vec::new();
    for _ in 0..n {
        big.clear_outgoing();
        q.push(run_once(
            Command::new(&callback).env("CALLBACK_CONFIG", bigcfg),
            &env_block("89069999993"),
            0,
        ));
        assert_eq!(big.outgoing_count(), 1, "QUEUED from the 10M list");
    }
    let q = stats(q);
    row("callback QUEUED, permit_file of 10000000 numbers", &q, n);
    let large = &per[1];
    let huge = &per[2];

    // autodial call
    let ad = Spool::new(&base.join("autodial"));
    let mut a = Vec::new();
    for i in 0..n {
        a.push(run_once(
            Command::new(&autodial)
                .arg("--spool-dir")
                .arg(&ad.root)
                .args([
                    "call",
                    "--channel",
                    "PJSIP/89161112233@sip-provider",
                    "--context",
                    "monitoring-alert",
                    "--set",
                    "ALERT_PROMPT=tt-somethingwrong",
                    "--in",
                    "1h",
                    "--name",
                    &format!("b{i}.call"),
                ]),
            b"",
            0,
        ));
    }
    let a = stats(a);
    row("autodial call --in 1h", &a, n);

    // Burst: 1,000 sessions, 50 concurrent, 200 numbers.
    let burst = Spool::new(&base.join("burst"));
    let bcfg = {
        let permit: Vec<String> = (0..200).map(|i| format!("\"8910{:07}\"", i)).collect();
        burst.config(
            &format!("[{}]", permit.join(",")),
            r#", "max_pending": 1000"#,
        )
    };
    let start = Instant::now();
    let handles: Vec<_> = (0..50)
        .map(|w| {
            let (cb, cfg) = (callback.clone(), bcfg.clone());
            std::thread::spawn(move || {
                let mut queued = 0;
                for k in 0..20 {
                    let num = format!("8910{:07}", (w * 20 + k) % 200);
                    let out = Command::new(&cb)
                        .env("CALLBACK_CONFIG", &cfg)
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .and_then(|mut c| {
                            c.stdin.take().unwrap().write_all(&env_block(&num))?;
                            c.wait_with_output()
                        })
                        .unwrap();
                    if String::from_utf8_lossy(&out.stdout).contains("\"QUEUED\"") {
                        queued += 1;
                    }
                }
                queued
            })
        })
        .collect();
    let queued: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let secs = start.elapsed().as_secs_f64();
    let files = burst.outgoing_count();
    let litter = fs::read_dir(burst.root.join("tmp")).unwrap().count();
    println!();
    println!(
        "burst: 1000 sessions, 50 concurrent, 200 numbers: {queued} QUEUED, {} DUPLICATE, {files} files, {litter} staging files left, {:.2} s, {:.0} sessions/s",
        1000 - queued,
        secs,
        1000.0 / secs
    );
    assert_eq!((queued, files, litter), (200, 200, 0));

    let size = fs::metadata(&callback).unwrap().len();
    println!(
        "callback binary: {} bytes ({:.2} MiB), stripped by the release profile",
        size,
        size as f64 / 1048576.0
    );
    let ssize = fs::metadata(&callback_static).unwrap().len();
    println!(
        "callback static binary: {} bytes ({:.2} MiB); static/floor median {:.2}x",
        ssize,
        ssize as f64 / 1048576.0,
        cs_stats.median_ms / floor_stats.median_ms
    );
    println!(
        "ratios: callback/floor median {:.2}x; permit_file over a 10-number one: 100k {:+.3} ms, 10M {:+.3} ms; autodial/floor {:.2}x",
        cb_stats.median_ms / floor_stats.median_ms,
        large.median_ms - per[0].median_ms,
        huge.median_ms - per[0].median_ms,
        a.median_ms / floor_stats.median_ms
    );
    alerts(&base, &target, &triple, &floor, n);
    oncall(&base, &target, n);
    heartbeats(&base, &target, &triple, &floor, n);
    line(&base, &target, &triple, &floor, n);
    let _ = fs::remove_dir_all(&base);
}

/// Phone alerts: the `alert` AGI start-up (dynamic and static) against the
/// floor, and `autodial alert raise` of a 3-step chain with and without
/// speech.
fn alerts(base: &Path, target: &Path, triple: &str, floor: &Path, n: usize) {
    let alert = target.join("release/alert");
    let alert_static = target.join("static").join(triple).join("release/alert");
    let autodial = target.join("release/autodial");
    let dir = base.join("alerts");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("spool/outgoing")).unwrap();
    fs::create_dir_all(dir.join("spool/tmp")).unwrap();
    let config = |speech: &str| {
        let p = dir.join(format!("alerts-{speech}.json"));
        fs::write(
            &p,
            format!(
                r#"{{"call": {{"channel": "PJSIP/{{number}}@sip-provider"}},
                "contacts": {{"a": {{"number": "1001"}}, "b": {{"number": "1002"}}, "c": {{"number": "1003"}}}},
                "chains": {{"three": {{"steps": [{{"contacts": ["a"]}}, {{"contacts": ["b"], "after_seconds": 120}},
                                              {{"contacts": ["c"], "after_seconds": 240}}]}}}},
                "speech": {{"engine": "{speech}", "voices": {{"en": "en-us"}}}},
                "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
                d = dir.display()
            ),
        )
        .unwrap();
        p
    };
    let (with_speech, without) = (config("espeak-ng"), config("none"));
    let clear = || {
        for e in fs::read_dir(dir.join("spool/outgoing")).unwrap() {
            let _ = fs::remove_file(e.unwrap().path());
        }
    };
    let raise = |cfg: &Path, id: &str, text: &str| {
        let mut c = Command::new(&autodial);
        c.env("AUTODIAL_ALERTS", cfg).args([
            "alert", "raise", "--id", id, "--text", text, "--chain", "three",
        ]);
        c
    };
    // Warm the phrase cache (rendered once ever), then every raise renders
    // a new text.
    run_once(&mut raise(&with_speech, "warm", "warm up"), b"", 0);
    let (mut rs, mut rn) = (Vec::new(), Vec::new());
    for i in 0..n.min(100) {
        clear();
        rs.push(run_once(
            &mut raise(
                &with_speech,
                &format!("s{i}"),
                &format!("Disk full on db{i}"),
            ),
            b"",
            0,
        ));
        clear();
        rn.push(run_once(
            &mut raise(&without, &format!("n{i}"), &format!("Disk full on db{i}")),
            b"",
            0,
        ));
    }
    // The AGI: a call of an alert acked already (opens config and database,
    // reads, one prompt) and a failed attempt (a write transaction).
    run_once(&mut raise(&without, "acked", "x"), b"", 0);
    let st = Command::new(&autodial)
        .env("AUTODIAL_ALERTS", &without)
        .args(["alert", "ack", "acked"])
        .output()
        .unwrap();
    assert!(st.status.success());
    let stale_in = agi_input(
        &["1"],
        "200 result=0 endpos=1\n200 result=1\n200 result=1\n",
    );
    let failed_in = agi_input(&["2", "failed", "3"], "200 result=1\n200 result=1\n");
    let agi = |bin: &Path| agi_command(bin, &without, &dir);
    let (mut fl, mut st_dyn, mut st_static, mut fa) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        fl.push(run_once(&mut Command::new(floor), &stale_in, 0));
        st_dyn.push(run_once(agi(&alert).arg("1"), &stale_in, 0));
        st_static.push(run_once(agi(&alert_static).arg("1"), &stale_in, 0));
        fa.push(run_once(
            agi(&alert).args(["2", "failed", "3"]),
            &failed_in,
            0,
        ));
    }
    let row = |what: &str, s: &Stats, runs: usize| {
        println!(
            "| {what} | {:.3} | {:.3} | {} | {runs} |",
            s.median_ms, s.p90_ms, s.rss_kib
        );
    };
    println!();
    println!("| what | median ms | p90 ms | peak RSS KiB | runs |");
    println!("|---|---|---|---|---|");
    let fl = stats(fl);
    let (sd, ss, fa) = (stats(st_dyn), stats(st_static), stats(fa));
    let (rs, rn) = (stats(rs), stats(rn));
    row("floor: C program reading the env block", &fl, n);
    row("alert AGI, call of an acked alert (STALE)", &sd, n);
    row("alert AGI, static build, the same", &ss, n);
    row("alert AGI, failed attempt recorded", &fa, n);
    row(
        "autodial alert raise, 3-step chain, espeak-ng (new text)",
        &rs,
        n.min(100),
    );
    row(
        "autodial alert raise, 3-step chain, no speech",
        &rn,
        n.min(100),
    );
    println!(
        "\nratios: alert/floor median {:.2}x (static {:.2}x); raise with speech {:.1} ms p90",
        sd.median_ms / fl.median_ms,
        ss.median_ms / fl.median_ms,
        rs.p90_ms
    );
}

/// On-call schedules: `autodial oncall now` and `shifts` for a year with 5
/// layers and 1,000 overrides in the database, and `autodial alert raise`
/// of a chain whose steps are schedules (with espeak-ng).
fn oncall(base: &Path, target: &Path, n: usize) {
    let autodial = target.join("release/autodial");
    let dir = base.join("oncall");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("spool/outgoing")).unwrap();
    fs::create_dir_all(dir.join("spool/tmp")).unwrap();
    let contacts: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    let list = |from: usize, k: usize| {
        contacts[from..from + k]
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cfg = dir.join("alerts.json");
    fs::write(
        &cfg,
        format!(
            r#"{{"call": {{"channel": "PJSIP/{{number}}@sip-provider"}},
            "contacts": {{{}}},
            "schedules": {{"big": {{"time_zone": "Europe/Berlin", "layers": [
                {{"name": "weekly", "contacts": [{}], "shift": "1w", "start": "2026-01-05T10:00"}},
                {{"name": "daily", "contacts": [{}], "shift": "1d", "start": "2026-01-05T09:00",
                  "only": [{{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}}]}},
                {{"name": "nights", "contacts": [{}], "shift": "1d", "start": "2026-01-05T20:00",
                  "only": [{{"from": "20:00", "to": "08:00"}}]}},
                {{"name": "weekend", "contacts": [{}], "shift": "12h", "start": "2026-01-03T08:00",
                  "only": [{{"days": ["sat", "sun"], "from": "08:00", "to": "08:00"}}]}},
                {{"name": "lunch", "contacts": [{}], "shift": "1d", "start": "2026-01-05T12:00",
                  "only": [{{"days": ["mon", "wed", "fri"], "from": "12:00", "to": "13:00"}}]}}],
                "fallback": ["p11"]}}}},
            "chains": {{"sched": {{"steps": [{{"schedules": ["big"]}},
                {{"schedules": ["big"], "contacts": ["p11"], "after_seconds": 300}},
                {{"schedules": ["big"], "after_seconds": 900}}], "repeat": 1, "repeat_after_seconds": 600}}}},
            "speech": {{"engine": "espeak-ng", "voices": {{"en": "en-us"}}}},
            "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
            contacts
                .iter()
                .enumerate()
                .map(|(i, c)| format!("\"{c}\": {{\"number\": \"10{i:02}\"}}"))
                .collect::<Vec<_>>()
                .join(", "),
            list(0, 3),
            list(3, 2),
            list(5, 2),
            list(7, 2),
            list(9, 2),
            d = dir.display()
        ),
    )
    .unwrap();
    // 1,000 overrides over the next year (6 hours each, spread out)
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    {
        let mut store = agi_callback::alert::store::Store::open(&dir.join("state")).unwrap();
        for i in 0..1000i64 {
            let from = now + i * 31_536 - 86_400;
            store
                .add_override(
                    "big",
                    &contacts[(i % 11) as usize],
                    from,
                    from + 6 * 3600,
                    now,
                )
                .unwrap();
        }
    }
    let cmd = |args: &[&str]| {
        let mut c = Command::new(&autodial);
        c.env("AUTODIAL_ALERTS", &cfg).args(args);
        c
    };
    let (mut now_s, mut shifts_s, mut raise_s) = (Vec::new(), Vec::new(), Vec::new());
    run_once(
        &mut cmd(&[
            "alert", "raise", "--id", "warm", "--text", "warm up", "--chain", "sched",
        ]),
        b"",
        0,
    );
    for i in 0..n {
        now_s.push(run_once(&mut cmd(&["oncall", "now", "--json"]), b"", 0));
        shifts_s.push(run_once(
            &mut cmd(&[
                "oncall",
                "shifts",
                "--schedule",
                "big",
                "--days",
                "365",
                "--json",
            ]),
            b"",
            0,
        ));
        if i < 100 {
            for e in fs::read_dir(dir.join("spool/outgoing")).unwrap() {
                let _ = fs::remove_file(e.unwrap().path());
            }
            let (id, text) = (format!("s{i}"), format!("Replication lag on db{i}"));
            raise_s.push(run_once(
                &mut cmd(&[
                    "alert", "raise", "--id", &id, "--text", &text, "--chain", "sched",
                ]),
                b"",
                0,
            ));
        }
    }
    let shifts = cmd(&[
        "oncall",
        "shifts",
        "--schedule",
        "big",
        "--days",
        "365",
        "--json",
    ])
    .output()
    .unwrap();
    let pieces = serde_json::from_slice::<serde_json::Value>(&shifts.stdout)
        .map(|v| v.as_array().map_or(0, |a| a.len()))
        .unwrap_or(0);
    println!();
    println!("| what | median ms | p90 ms | peak RSS KiB | runs |");
    println!("|---|---|---|---|---|");
    for (what, s, runs) in [
        (
            "autodial oncall now --json (5 layers, 1,000 overrides)",
            stats(now_s),
            n,
        ),
        (
            "autodial oncall shifts --days 365 --json (the same)",
            stats(shifts_s),
            n,
        ),
        (
            "autodial alert raise, 3 schedule steps and a repeat, espeak-ng (new text)",
            stats(raise_s),
            n.min(100),
        ),
    ] {
        println!(
            "| {what} | {:.3} | {:.3} | {} | {runs} |",
            s.median_ms, s.p90_ms, s.rss_kib
        );
    }
    println!("\nshifts of a year: {pieces} merged pieces");
}

/// Heartbeats: `autodial heartbeat ping` (a database write), and one run of
/// the timer (`AGI(alert,heartbeat,NAME)`) that finds a later deadline and
/// arms the next timer (a call file), against the floor.
fn heartbeats(base: &Path, target: &Path, triple: &str, floor: &Path, n: usize) {
    let autodial = target.join("release/autodial");
    let alert = target.join("release/alert");
    let alert_static = target.join("static").join(triple).join("release/alert");
    let dir = base.join("heartbeats");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("spool/outgoing")).unwrap();
    fs::create_dir_all(dir.join("spool/tmp")).unwrap();
    let cfg = dir.join("alerts.json");
    fs::write(
        &cfg,
        format!(
            r#"{{"call": {{"channel": "PJSIP/{{number}}@sip-provider"}},
            "contacts": {{"a": {{"number": "1001"}}}},
            "chains": {{"ops": {{"steps": [{{"contacts": ["a"]}}]}}}},
            "heartbeats": {{"prom": {{"timeout_seconds": 300, "chain": "ops", "text": "x"}}}},
            "schedules": {{"dba": {{"time_zone": "Europe/Moscow", "layers": [
                {{"name": "weekly", "contacts": ["a"], "shift": "1w", "start": "2026-01-05T10:00"}}],
                "fallback": ["a"]}}}},
            "speech": {{"engine": "none"}},
            "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let ping = || {
        let mut c = Command::new(&autodial);
        c.env("AUTODIAL_ALERTS", &cfg)
            .args(["heartbeat", "ping", "prom"]);
        c
    };
    run_once(&mut ping(), b"", 0);
    let block = agi_input(&["heartbeat", "prom"], "200 result=1\n200 result=1\n");
    let line_block = agi_input(&["oncall", "dba"], &"200 result=1\n".repeat(6));
    let (mut lines, mut lines_static) = (Vec::new(), Vec::new());
    let (mut fl, mut pings, mut runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        fl.push(run_once(&mut Command::new(floor), &block, 0));
        pings.push(run_once(&mut ping(), b"", 0));
        // the timer that ran is Asterisk's to delete: as it would
        for e in fs::read_dir(dir.join("spool/outgoing")).unwrap() {
            let _ = fs::remove_file(e.unwrap().path());
        }
        // its file due now, the deadline later (a ping came): ALIVE
        {
            let mut s = agi_callback::alert::store::Store::open(&dir.join("state")).unwrap();
            s.heartbeat_update("prom", |h| {
                let mut h = h.clone();
                h.timer = h.timer.take().map(|(f, _)| (f, 0));
                (h, ())
            })
            .unwrap();
        }
        let mut agi = agi_command(&alert, &cfg, &dir);
        runs.push(run_once(agi.args(["heartbeat", "prom"]), &block, 0));
        let mut agi = agi_command(&alert, &cfg, &dir);
        lines.push(run_once(agi.args(["oncall", "dba"]), &line_block, 0));
        let mut agi = agi_command(&alert_static, &cfg, &dir);
        lines_static.push(run_once(agi.args(["oncall", "dba"]), &line_block, 0));
    }
    println!();
    println!("| what | median ms | p90 ms | peak RSS KiB | runs |");
    println!("|---|---|---|---|---|");
    for (what, s) in [
        ("floor: C program reading the env block", stats(fl)),
        ("autodial heartbeat ping (a database write)", stats(pings)),
        (
            "alert AGI, heartbeat timer run: ALIVE, the next timer published",
            stats(runs),
        ),
        (
            "alert AGI, on-call line: ONCALL_DIAL and ONCALL_NEXT_DIAL set",
            stats(lines),
        ),
        (
            "alert AGI, static build, the same on-call line",
            stats(lines_static),
        ),
    ] {
        println!(
            "| {what} | {:.3} | {:.3} | {} | {n} |",
            s.median_ms, s.p90_ms, s.rss_kib
        );
    }
}

/// The alert line: `AGI(alert,line)` from start to its first prompt
/// after the PIN ("Alerts firing:", the list of 1,000 firing alerts read),
/// where the caller hangs up (EOF); against the floor.
fn line(base: &Path, target: &Path, triple: &str, floor: &Path, n: usize) {
    use agi_callback::alert::pager::{Pager, RaiseRequest};
    let alert = target.join("release/alert");
    let alert_static = target.join("static").join(triple).join("release/alert");
    let dir = base.join("line");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("spool/outgoing")).unwrap();
    fs::create_dir_all(dir.join("spool/tmp")).unwrap();
    let cfg = dir.join("alerts.json");
    fs::write(
        &cfg,
        format!(
            r#"{{"call": {{"channel": "PJSIP/{{number}}@sip-provider"}},
            "contacts": {{"ivan": {{"number": "89161112233", "pin": "4711"}},
                         "petr": {{"number": "89162223344"}}}},
            "chains": {{"ops": {{"steps": [{{"contacts": ["petr"]}},
                                          {{"contacts": ["ivan"], "after_seconds": 600}}]}}}},
            "speech": {{"engine": "none"}},
            "state_dir": "{d}/state", "spool_dir": "{d}/spool"}}"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let pager =
        Pager::open(agi_callback::alert::config::AlertsConfig::load(&cfg).unwrap()).unwrap();
    for i in 0..1000 {
        pager
            .raise(
                &RaiseRequest {
                    id: format!("load-{i}"),
                    text: format!("Disk full on db{i}"),
                    chain: Some("ops".into()),
                    labels: Default::default(),
                    labels_cut: 0,
                },
                None,
            )
            .unwrap();
    }
    drop(pager);
    // the caller: ivan's number in the env block, the PIN, then gone at
    // the first prompt
    let mut input = String::from_utf8(agi_input(&["line"], "200 result=4711\n")).unwrap();
    input = input.replace("agi_callerid: unknown", "agi_callerid: 89161112233");
    let (mut fl, mut dynamic, mut stat) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        fl.push(run_once(&mut Command::new(floor), input.as_bytes(), 0));
        let mut agi = agi_command(&alert, &cfg, &dir);
        dynamic.push(run_once(agi.arg("line"), input.as_bytes(), 0));
        let mut agi = agi_command(&alert_static, &cfg, &dir);
        stat.push(run_once(agi.arg("line"), input.as_bytes(), 0));
    }
    let log = fs::read_to_string(dir.join("autodial-alert.log")).unwrap_or_default();
    assert!(
        log.contains("(ivan): OK (hung up); heard 0 of 1000 firing"),
        "the line reached its first prompt: {}",
        log.lines().last().unwrap_or_default()
    );
    println!();
    println!("| what | median ms | p90 ms | peak RSS KiB | runs |");
    println!("|---|---|---|---|---|");
    for (what, s) in [
        ("floor: C program reading the env block", stats(fl)),
        (
            "alert AGI, alert line: PIN, 1,000 firing alerts read, first prompt",
            stats(dynamic),
        ),
        ("alert AGI, static build, the same", stats(stat)),
    ] {
        println!(
            "| {what} | {:.3} | {:.3} | {} | {n} |",
            s.median_ms, s.p90_ms, s.rss_kib
        );
    }
}

/// What Asterisk sends the `alert` AGI: the env block captured from
/// Asterisk 22.10 with `args` as its arguments, then `replies`.
fn agi_input(args: &[&str], replies: &str) -> Vec<u8> {
    let env = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/asterisk-22.10/alert-flow/answered-ack.env.txt"
    ))
    .unwrap();
    let mut b: String = env
        .lines()
        .filter(|l| !l.starts_with("agi_arg_") && !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    for (i, a) in args.iter().enumerate() {
        b.push_str(&format!("agi_arg_{}: {a}\n", i + 1));
    }
    b.push('\n');
    b.push_str(replies);
    b.into_bytes()
}

/// The `alert` AGI program `bin` as Asterisk starts it, with `config`
/// and its log in `dir`.
fn agi_command(bin: &Path, config: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env("AUTODIAL_ALERTS", config)
        .env("AST_AGI_DIR", "/usr/share/asterisk/agi-bin")
        .env("AST_LOG_DIR", dir);
    c
}
