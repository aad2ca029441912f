//! The status page in a real browser: `autodial serve` on a loopback
//! port, then `tests/browser/ui.py` drives headless Chromium through
//! WebDriver (Debian's chromium, chromium-driver, python3-selenium): sign
//! in, an Alertmanager alert appearing within one refresh, Acknowledge,
//! an override, hostile text, a cross-origin form. Screenshots go to
//! `target/screenshots/` (CI keeps them).

mod common;
use std::fs;
use std::process::Command;

#[test]
fn the_status_page_in_headless_chromium() {
    // the first call 30 s away: still pending when the browser acks
    let pbx = common::Pbx::ui(30);
    let (dir, cfg) = (&pbx.dir, pbx.path("alerts.json"));
    let token = "browser-token-1";
    let srv = common::Serve::start(&cfg, dir.path(), token);
    let shots = format!("{}/target/screenshots", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("/usr/bin/python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/ui.py"))
        .args(["--url", &format!("http://127.0.0.1:{}", srv.port)])
        .args(["--token", token])
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .args(["--autodial", env!("CARGO_BIN_EXE_autodial")])
        .arg("--config")
        .arg(&cfg)
        .args([
            "--fixture",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/alertmanager-0.25/01-firing-group-two-alerts.json"
            ),
        ])
        .args(["--shots", &shots])
        .output()
        .expect("python3 (with python3-selenium) is needed for the browser test");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}\nserve log:\n{}", srv.log());
    assert!(said.contains("every step passed"), "{said}");
    println!("{said}");
    for f in [
        "status-desktop.png",
        "status-phone.png",
        "oncall-desktop.png",
    ] {
        let len = fs::metadata(format!("{shots}/{f}")).map_or(0, |m| m.len());
        assert!(len > 10_000, "{f}: {len} bytes");
    }
}
