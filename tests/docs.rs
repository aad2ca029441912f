//! The docs show commands that exist: every `autodial` subcommand and
//! `--flag` a page shows is one the program knows (its `--help` lists it).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const AUTODIAL: &str = env!("CARGO_BIN_EXE_autodial");

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = vec![
        root.join("README.md"),
        root.join("CONTRIBUTING.md"),
        root.join("ARCHITECTURE.md"),
    ];
    v.extend(
        fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    v
}

/// The subcommands under each command path.
fn subcommands(path: &[&str]) -> &'static [&'static str] {
    match path {
        [] => &[
            "call",
            "check",
            "list",
            "cancel",
            "alert",
            "oncall",
            "heartbeat",
            "serve",
        ],
        ["heartbeat"] => &["ping", "list", "pause", "resume"],
        ["alert"] => &["raise", "ack", "resolve", "list", "show", "prepare"],
        ["oncall"] => &["now", "shifts", "check", "ical", "override", "replan"],
        ["oncall", "override"] => &["add", "remove", "list"],
        _ => &[],
    }
}

#[test]
fn every_subcommand_and_flag_the_docs_show_exists() {
    let mut helps: BTreeMap<Vec<String>, String> = BTreeMap::new();
    let mut checked = 0;
    for page in pages() {
        let text = fs::read_to_string(&page).unwrap();
        for line in text.lines() {
            let Some(at) = line.find("autodial ") else {
                continue;
            };
            // only command lines: code blocks (4 spaces) or `code`
            if !(line.starts_with("    ") || line[..at].ends_with('`')) {
                continue;
            }
            let mut rest = &line[at + "autodial ".len()..];
            if !line.starts_with("    ") {
                // inline code ends at its backtick
                rest = rest.split('`').next().unwrap_or("");
            }
            let tokens: Vec<&str> = rest
                .split(|c: char| c.is_whitespace() || c == '|')
                .filter(|t| !t.is_empty())
                .take_while(|t| !t.starts_with('#'))
                .collect();
            let mut path: Vec<&str> = Vec::new();
            let mut flags = Vec::new();
            for t in &tokens {
                let bare = t.trim_matches(|c: char| "[]()`'\",.:;".contains(c));
                if let Some(f) = bare.strip_prefix("--") {
                    let f = f.split('=').next().unwrap();
                    if !f.is_empty() {
                        flags.push(format!("--{f}"));
                    }
                } else if subcommands(&path).contains(&bare) {
                    path.push(bare);
                }
            }
            let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
            let help = helps.entry(key.clone()).or_insert_with(|| {
                let o = Command::new(AUTODIAL)
                    .args(&key)
                    .arg("--help")
                    .output()
                    .unwrap();
                assert!(o.status.success(), "autodial {key:?} --help");
                String::from_utf8_lossy(&o.stdout).into_owned()
            });
            for f in flags {
                assert!(
                    help.contains(&f),
                    "{}: `{}` shows {f}, which `autodial {} --help` does not list",
                    page.display(),
                    line.trim(),
                    key.join(" ")
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 30, "only {checked} flags found in the docs");
}
