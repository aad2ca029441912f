//! In-process microbenchmarks for regression tracking:
//! `cargo bench --bench micro`.

use std::hint::black_box;

use agi_callback::agi::{parse_reply, Env};
use agi_callback::callfile::{parse, Action, CallFile, CallerId};
use agi_callback::oncall::config::ScheduleCfg;
use agi_callback::oncall::{Override, Schedule};
use criterion::{criterion_group, criterion_main, Criterion};

fn env_block() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/asterisk-22.10/env-utf8-name.txt"
    ))
    .unwrap()
}

fn call_file() -> CallFile {
    let mut c = CallFile::new(
        "PJSIP/89105647899@sip-provider",
        Action::Extension {
            context: "callback-menu".into(),
            extension: "s".into(),
            priority: Some(1),
        },
    );
    c.callerid = Some(CallerId {
        name: Some("Callback".into()),
        number: Some("84955556677".into()),
    });
    c.max_retries = Some(2);
    c.retry_time = Some(60);
    c.wait_time = Some(30);
    c.variables = vec![
        ("CALLBACK_NUMBER".into(), "89105647899".into()),
        ("CALLBACK_TECH".into(), "PJSIP".into()),
    ];
    c
}

fn benches(c: &mut Criterion) {
    let env = env_block();
    c.bench_function("env: parse a real 20-key block", |b| {
        b.iter(|| Env::parse(black_box(&env)).unwrap())
    });
    let replies: &[&[u8]] = &[
        b"200 result=1\n",
        b"200 result=1 (a b)\n",
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        b"520-Invalid command syntax.  Proper usage follows:\nUsage text\n520 End of proper usage.\n",
    ];
    c.bench_function("reply: parse four kinds", |b| {
        b.iter(|| {
            for r in replies {
                black_box(parse_reply(black_box(r)).unwrap());
            }
        })
    });
    let cf = call_file();
    c.bench_function("callfile: render", |b| {
        b.iter(|| black_box(&cf).render().unwrap())
    });
    let text = cf.render().unwrap();
    c.bench_function("callfile: parse", |b| {
        b.iter(|| parse(black_box(text.as_bytes())))
    });
    let (s, overrides) = schedule();
    let t = 1_798_000_000; // 2026-12-23
    c.bench_function(
        "oncall: who and since/until, 5 layers, 1,000 overrides",
        |b| b.iter(|| black_box(&s).current(black_box(&overrides), t)),
    );
    c.bench_function(
        "oncall: shifts of 365 days, 5 layers, 1,000 overrides",
        |b| b.iter(|| black_box(&s).pieces(black_box(&overrides), t, t + 365 * 86_400)),
    );
}

/// Five layers (weekly, weekday days, nights, weekends, lunch) in Berlin,
/// and 1,000 overrides spread over a year.
fn schedule() -> (Schedule, Vec<Override>) {
    let json = r#"{"time_zone": "Europe/Berlin", "layers": [
        {"name": "weekly", "contacts": ["a", "b", "c"], "shift": "1w", "start": "2026-01-05T10:00"},
        {"name": "daily", "contacts": ["d", "e"], "shift": "1d", "start": "2026-01-05T09:00",
         "only": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "09:00", "to": "18:00"}]},
        {"name": "nights", "contacts": ["f", "g"], "shift": "1d", "start": "2026-01-05T20:00",
         "only": [{"from": "20:00", "to": "08:00"}]},
        {"name": "weekend", "contacts": ["h", "i"], "shift": "12h", "start": "2026-01-03T08:00",
         "only": [{"days": ["sat", "sun"], "from": "08:00", "to": "08:00"}]},
        {"name": "lunch", "contacts": ["j", "k"], "shift": "1d", "start": "2026-01-05T12:00",
         "only": [{"days": ["mon", "wed", "fri"], "from": "12:00", "to": "13:00"}]}],
        "fallback": ["boss"]}"#;
    let cfg: ScheduleCfg = serde_json::from_str(json).unwrap();
    let s = cfg.build("big", |_| true).unwrap();
    let overrides = (0..1000i64)
        .map(|i| Override {
            id: i,
            contact: format!("o{}", i % 7),
            from: 1_798_000_000 + i * 31_536 - 86_400,
            to: 1_798_000_000 + i * 31_536 - 86_400 + 6 * 3600,
        })
        .collect();
    (s, overrides)
}

criterion_group!(micro, benches);
criterion_main!(micro);
