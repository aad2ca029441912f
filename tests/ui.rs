//! The status page over real HTTP from `autodial serve`: sign-in, the
//! session cookie, CSRF and same-origin checks, acknowledging and
//! resolving `via: web`, overrides, escaping, the security headers on
//! every answer, and the JSON API left as it was. (The real browser runs
//! in `tests/browser/`.)

mod common;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const TOKEN: &str = "s3cret-token";

use common::Pbx;

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request with `headers` (a form body when `form` is given).
fn req(port: u16, method: &str, path: &str, headers: &[(&str, &str)], form: &str) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        form.len()
    );
    if !form.is_empty() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(form.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in as `name`: the cookie header to send and the CSRF token of
/// the session (read from the page's forms).
fn sign_in(port: u16, name: &str) -> (String, String) {
    let r = req(
        port,
        "POST",
        "/ui/login",
        &[],
        &format!("token={}&name={name}", enc(TOKEN)),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let set = r.header("set-cookie").unwrap().to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let page = req(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    (cookie, csrf_of(&page.body))
}

fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

fn raise(port: u16, id: &str, text: &str) {
    let body = serde_json::json!({"id": id, "text": text, "chain": "default"}).to_string();
    let (st, b) = common::http(port, "POST", "/alerts", Some(TOKEN), body.as_bytes());
    assert_eq!(st, 200, "{b}");
}

#[test]
fn sign_in_sessions_and_the_security_headers() {
    let pbx = Pbx::ui(0);
    let srv = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
    let port = srv.port;
    // not signed in: to the sign-in page
    let r = req(port, "GET", "/", &[], "");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/ui/login"));
    let login = req(port, "GET", "/ui/login", &[], "");
    assert_eq!(login.status, 200);
    assert!(
        login.body.contains("<label for=\"token\">"),
        "labels on inputs"
    );
    // every answer carries the headers: pages, static files, the API
    for r in [
        &login,
        &req(port, "GET", "/ui/static/app.js", &[], ""),
        &req(port, "GET", "/healthz", &[], ""),
        &req(port, "GET", "/alerts", &[], ""),
    ] {
        let csp = r.header("content-security-policy").unwrap();
        for d in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(d), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
    assert!(!login.body.contains("<script>"), "no inline script");
    // a wrong token and a wrong name: the same answer
    let bad_token = req(port, "POST", "/ui/login", &[], "token=nope&name=olga");
    let bad_name = req(
        port,
        "POST",
        "/ui/login",
        &[],
        &format!("token={}&name=mallory", enc(TOKEN)),
    );
    assert_eq!((bad_token.status, bad_name.status), (401, 401));
    assert_eq!(bad_token.body, bad_name.body);
    assert!(bad_token.header("set-cookie").is_none());
    // right: a session cookie as the issue asks
    let ok = req(
        port,
        "POST",
        "/ui/login",
        &[("X-Forwarded-Proto", "https")],
        &format!("token={}&name=olga", enc(TOKEN)),
    );
    assert_eq!(ok.status, 303);
    let set = ok.header("set-cookie").unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
        "Secure",
    ] {
        assert!(set.contains(part), "{set}");
    }
    let (cookie, csrf) = sign_in(port, "olga");
    let plain = req(
        port,
        "POST",
        "/ui/login",
        &[],
        &format!("token={}&name=olga", enc(TOKEN)),
    );
    assert!(
        !plain.header("set-cookie").unwrap().contains("Secure"),
        "plain http: no Secure"
    );
    let page = req(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert!(page.body.contains("Signed in as <strong>olga</strong>"));
    // the never-pinged heartbeat and the schedule line are there
    assert!(page.body.contains("backup"), "{}", page.body);
    assert!(page.body.contains("never_pinged"));
    assert!(page.body.contains("<td data-label=\"Schedule\">dba</td>"));
    // the cookie is no key to the API
    let api = req(port, "GET", "/alerts", &[("Cookie", &cookie)], "");
    assert_eq!(api.status, 401);
    // sign-out needs the session's token, then the session is gone
    let out = req(
        port,
        "POST",
        "/ui/logout",
        &[("Cookie", &cookie)],
        "csrf=wrong",
    );
    assert_eq!(out.status, 403);
    let out = req(
        port,
        "POST",
        "/ui/logout",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        req(port, "GET", "/", &[("Cookie", &cookie)], "").status,
        303
    );
}

#[test]
fn ack_and_resolve_from_the_page_and_every_forgery_refused() {
    let pbx = Pbx::ui(0);
    let srv = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
    let port = srv.port;
    let evil = "<img src=x onerror=alert(1)></script><script>alert(2)</script>";
    raise(port, "db-disk", evil);
    raise(port, "web-5xx", "Web errors");
    assert_eq!(pbx.outgoing().len(), 4);
    let (cookie, csrf) = sign_in(port, "olga");
    let (cookie2, csrf2) = sign_in(port, "ivan");
    let page = req(port, "GET", "/", &[("Cookie", &cookie)], "");
    assert!(!page.body.contains("<img"), "escaped");
    assert!(page.body.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(page.body.contains("Firing (2)"), "{}", page.body);
    let ack = "/ui/alerts/db-disk/ack";
    let form = format!("csrf={csrf}");
    // forgeries: change nothing
    for (headers, body, why) in [
        (
            vec![
                ("Cookie", cookie.as_str()),
                ("Origin", "http://evil.example"),
            ],
            form.clone(),
            "another origin",
        ),
        (
            vec![
                ("Cookie", cookie.as_str()),
                ("Sec-Fetch-Site", "cross-site"),
            ],
            form.clone(),
            "a cross-site fetch",
        ),
        (vec![("Cookie", cookie.as_str())], String::new(), "no token"),
        (
            vec![("Cookie", cookie.as_str())],
            format!("csrf={csrf2}"),
            "another session's token",
        ),
        (vec![], form.clone(), "no session"),
        (
            vec![("Cookie", cookie2.as_str())],
            form.clone(),
            "this token in another session",
        ),
    ] {
        let r = req(port, "POST", ack, &headers, &body);
        assert_eq!(r.status, 403, "{why}: {}", r.body);
        assert_eq!(pbx.show("db-disk")["state"], "firing", "{why}");
    }
    // a GET to an action: not allowed, nothing changed
    let r = req(port, "GET", ack, &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 405);
    assert_eq!(pbx.show("db-disk")["state"], "firing");
    assert_eq!(pbx.outgoing().len(), 4);
    // the real thing, with the browser's headers
    let port_s = format!("http://127.0.0.1:{port}");
    let r = req(
        port,
        "POST",
        ack,
        &[
            ("Cookie", &cookie),
            ("Origin", &port_s),
            ("Sec-Fetch-Site", "same-origin"),
        ],
        &form,
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/ui/alerts/db-disk?m=acked"));
    let v = pbx.show("db-disk");
    assert_eq!(
        (
            v["state"].as_str(),
            v["acked_by"].as_str(),
            v["acked_via"].as_str()
        ),
        (Some("acked"), Some("olga"), Some("web"))
    );
    let left = pbx.outgoing();
    assert_eq!(left.len(), 2, "its pending calls gone: {left:?}");
    assert!(left.iter().all(|f| f.contains("web-5xx")));
    // the alert's page: the timeline
    let p = req(
        port,
        "GET",
        "/ui/alerts/db-disk?m=acked",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(p.status, 200);
    assert!(p.body.contains("Acknowledged."));
    assert!(
        p.body
            .contains("acknowledged by <strong>olga</strong> via web"),
        "{}",
        p.body
    );
    assert!(p.body.contains("cancelled"));
    assert!(!p.body.contains("<img"));
    // resolve
    let r = req(
        port,
        "POST",
        "/ui/alerts/web-5xx/resolve",
        &[("Cookie", &cookie2)],
        &format!("csrf={csrf2}"),
    );
    assert_eq!(r.status, 303);
    assert_eq!(pbx.show("web-5xx")["state"], "resolved");
    assert!(pbx.outgoing().is_empty());
    let missing = req(port, "GET", "/ui/alerts/nope", &[("Cookie", &cookie)], "");
    assert_eq!(missing.status, 404);
    let log = srv.log();
    assert!(
        log.contains("alert db-disk acknowledged by olga on the status page"),
        "{log}"
    );
}

#[test]
fn overrides_from_the_page() {
    let pbx = Pbx::ui(0);
    let srv = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
    let port = srv.port;
    let (cookie, csrf) = sign_in(port, "olga");
    let page = req(port, "GET", "/ui/oncall", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Shifts, the next 14 days"));
    assert!(page.body.contains("href=\"/oncall/dba.ics\""));
    assert!(page.body.contains("<label for=\"o-from\">"));
    // a bad time: 400 naming the field, nothing added
    let bad = req(
        port,
        "POST",
        "/ui/oncall/overrides",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}&schedule=dba&contact=olga&from=tomorrow&to=2030-01-01T00%3A00"),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("from: "), "{}", bad.body);
    // olga covers the next hour (wall clock in Moscow, as the form says)
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let msk = |t: i64| {
        chrono::DateTime::from_timestamp(t + 3 * 3600, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M")
            .to_string()
    };
    let r = req(
        port,
        "POST",
        "/ui/oncall/overrides",
        &[("Cookie", &cookie)],
        &format!(
            "csrf={csrf}&schedule=dba&contact=olga&from={}&to={}",
            enc(&msk(now - 60)),
            enc(&msk(now + 3600))
        ),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
        .args(["oncall", "now", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["contacts"][0], "olga", "{v}");
    let page = req(port, "GET", "/ui/oncall", &[("Cookie", &cookie)], "");
    assert!(page.body.contains("override 1"), "marked");
    // remove it
    let r = req(
        port,
        "POST",
        "/ui/oncall/overrides/1/remove",
        &[("Cookie", &cookie)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(r.status, 303);
    let o = Command::new(env!("CARGO_BIN_EXE_autodial"))
        .env("AUTODIAL_ALERTS", pbx.path("alerts.json"))
        .args(["oncall", "override", "list", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
}

#[test]
fn ten_failed_sign_ins_a_minute_slow_that_address_down() {
    let pbx = Pbx::ui(0);
    let srv = common::Serve::start(&pbx.path("alerts.json"), pbx.dir.path(), TOKEN);
    let port = srv.port;
    let mut times = BTreeMap::new();
    for i in 0..12 {
        let t = Instant::now();
        let r = req(port, "POST", "/ui/login", &[], "token=guess&name=olga");
        assert_eq!(r.status, 401);
        times.insert(i, t.elapsed());
    }
    for i in 0..10 {
        assert!(
            times[&i] < Duration::from_millis(900),
            "{i}: {:?}",
            times[&i]
        );
    }
    assert!(times[&10] >= Duration::from_secs(1), "{:?}", times[&10]);
    assert!(times[&11] >= Duration::from_secs(2), "{:?}", times[&11]);
    // even the right token waits now (and still gets in)
    let t = Instant::now();
    let r = req(
        port,
        "POST",
        "/ui/login",
        &[],
        &format!("token={}&name=olga", enc(TOKEN)),
    );
    assert_eq!(r.status, 303);
    assert!(t.elapsed() >= Duration::from_secs(1));
}
