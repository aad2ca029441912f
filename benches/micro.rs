//! In-process microbenchmarks for regression tracking:
//! `cargo bench --bench micro`.

use std::hint::black_box;

use agi_callback::agi::{parse_reply, Env};
use agi_callback::callfile::{parse, Action, CallFile, CallerId};
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
}

criterion_group!(micro, benches);
criterion_main!(micro);
