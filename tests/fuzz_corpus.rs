//! Replays the checked-in fuzz corpus (fuzz/corpus/) through the same
//! checks as the fuzz targets, so every input the fuzzers found
//! interesting stays a regression test on stable Rust.

use std::fs;
use std::io::Cursor;
use std::path::PathBuf;

use agi_callback::agi::{parse_reply, Command, Env, Session};
use agi_callback::callfile::parse;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files.into_iter().map(|p| fs::read(p).unwrap()).collect()
}

#[test]
fn env_corpus() {
    for data in corpus("env") {
        let parsed = Env::parse(&data);
        let streamed = Env::read_from(&mut Cursor::new(&data));
        if let (Ok(a), Ok(b)) = (&parsed, &streamed) {
            assert_eq!(a, b);
        }
    }
}

#[test]
fn reply_corpus() {
    for data in corpus("reply") {
        let mut rest = &data[..];
        while let Ok((_, used)) = parse_reply(rest) {
            assert!(used > 0 && used <= rest.len());
            rest = &rest[used..];
        }
        let mut input = b"agi_request: fuzz\n\n".to_vec();
        input.extend_from_slice(&data);
        let mut s = Session::new(Cursor::new(input), std::io::sink());
        s.read_env().unwrap();
        for _ in 0..16 {
            if s.send(&Command::noop()).is_err() {
                break;
            }
        }
    }
}

#[test]
fn callfile_corpus() {
    for data in corpus("callfile") {
        let p = parse(&data);
        if let Some(call) = p.call {
            if let Ok(text) = call.render() {
                assert_eq!(parse(text.as_bytes()).call, Some(call), "{text}");
            }
        }
    }
}
