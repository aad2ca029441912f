//! The HTTP receiver: axum on hyper and tokio. Every request that changes
//! something runs the same [`Pager`] operation the command line runs, on a
//! blocking thread, with no lock shared between requests (speech is
//! rendered a few at a time, outside any of them); a 2xx is sent only once
//! the alert is committed and the spool agrees with it.
//!
//! The connection layer is ours (hyper's HTTP/1 server with a timer): a
//! client gets 10 s to send a request's headers, also between requests on
//! a kept-alive connection, so idle and trickling connections are closed;
//! connections are capped below the descriptor limit, which is raised to
//! its hard limit at start. A task settles, every few seconds, whatever
//! the spool still owes (a publish or removal that failed).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;
use tower_http::limit::RequestBodyLimitLayer;

use super::oncall_api;
use super::payload::{self, Action, AmPayload, Generic};
use crate::alert::pager::{unix_now, Pager, PagerError, Report};
use crate::alert::store::Counts;
use crate::error::Invalid;
use crate::{error_chain, escape_bytes};

/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;
/// A request's body must arrive within this, else 408 (nothing was done;
/// a megabyte takes milliseconds on any network a sender sits on).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// The time a raise gives speech: past it the alert is raised with the
/// fallback prompt, well inside any sender's timeout.
pub const SPEECH_BUDGET: Duration = Duration::from_secs(20);
/// A client must send a request's headers within this (also the idle
/// time allowed between requests on a kept-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// After SIGTERM, requests in flight get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);
/// How often the spool's debts are settled in the background.
pub const RETRY_EVERY: Duration = Duration::from_secs(3);
/// Descriptors kept free of connections (the database, the spool, speech).
const FD_RESERVE: u64 = 128;
/// Most connections at once, whatever the descriptor limit.
const MAX_CONNECTIONS: u64 = 16_384;
/// Bytes of a request path written to the log.
const LOGGED_PATH: usize = 200;

/// What `autodial serve` was asked to do.
pub struct Options {
    pub listen: SocketAddr,
    pub token: Option<Vec<u8>>,
    pub pager: Pager,
    /// The config file, read again on SIGHUP.
    pub config_path: std::path::PathBuf,
}

pub(super) struct App {
    pub(super) pager: Arc<Pager>,
    pub(super) token: Option<Vec<u8>>,
    /// The status page's sessions and sign-in failures.
    pub(super) sessions: super::ui::session::Sessions,
    /// Requests by matched route and status.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

pub(super) type Shared = Arc<App>;

/// What a handler tells the request log.
#[derive(Clone, Default)]
pub(super) struct LogInfo {
    id: Option<String>,
    outcome: &'static str,
}

/// A JSON answer with its status, and what to log.
pub(super) struct Reply {
    status: StatusCode,
    body: Value,
    log: LogInfo,
}

impl Reply {
    pub(super) fn new(
        status: StatusCode,
        body: Value,
        id: Option<String>,
        outcome: &'static str,
    ) -> Reply {
        Reply {
            status,
            body,
            log: LogInfo { id, outcome },
        }
    }
    /// A 400 for input refused by name.
    pub(super) fn invalid(e: &Invalid) -> Reply {
        Reply::error(StatusCode::BAD_REQUEST, e.to_string(), Some(e.field.into()))
    }
    pub(super) fn error(
        status: StatusCode,
        msg: impl Into<String>,
        field: Option<String>,
    ) -> Reply {
        let msg = msg.into();
        Reply::new(
            status,
            json!({"error": msg, "field": field}),
            None,
            "rejected",
        )
    }
    fn report(r: Report) -> Reply {
        let (id, word) = (r.id.clone(), r.status);
        let body = serde_json::to_value(&r).unwrap_or(Value::Null);
        Reply::new(StatusCode::OK, body, Some(id), word)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        r.extensions_mut().insert(self.log);
        r
    }
}

/// Reads a request body within [`BODY_TIMEOUT`] and [`MAX_BODY`]: 408 or
/// 413 otherwise (nothing was done).
pub(super) async fn read_body(body: Body) -> Result<Bytes, Reply> {
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Err(_) => Err(Reply::error(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
            None,
        )),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let mut src: Option<&dyn std::error::Error> = Some(&e);
            while let Some(s) = src {
                if s.is::<http_body_util::LengthLimitError>() {
                    return Err(too_large());
                }
                src = s.source();
            }
            Err(Reply::error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {}", error_chain(&e)),
                None,
            ))
        }
    }
}

fn too_large() -> Reply {
    Reply::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {} bytes", MAX_BODY),
        None,
    )
}

/// Reads a JSON object into `T`; a 400 naming the field at fault
/// otherwise. Only an object is a payload (serde would read a struct from
/// an array too).
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid JSON: a JSON object is expected",
            None,
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // serde names a missing field only in its message
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
            .map(|f| {
                if path == "." {
                    f.to_string()
                } else {
                    format!("{path}.{f}")
                }
            });
        let field = missing.or_else(|| (path != "." && !path.contains('?')).then_some(path));
        Reply::error(
            StatusCode::BAD_REQUEST,
            format!("invalid JSON: {}", e.inner()),
            field,
        )
    })
}

/// Runs `f` with the pager on a blocking thread (no lock of ours held).
pub(super) async fn with_pager<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&Pager) -> T + Send + 'static,
) -> Result<T, Reply> {
    let pager = app.pager.clone();
    tokio::task::spawn_blocking(move || f(&pager))
        .await
        .map_err(|e| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
}

/// [`with_pager`] for a pager operation: its error is answered through
/// [`pager_error`] (`id` for the log), so a handler only says what a
/// success answers.
pub(super) async fn pager_call<T: Send + 'static>(
    app: &Shared,
    id: Option<String>,
    f: impl FnOnce(&Pager) -> Result<T, PagerError> + Send + 'static,
) -> Result<T, Reply> {
    with_pager(app, f).await?.map_err(|e| pager_error(e, id))
}

/// The one mapping of pager errors to statuses.
pub(super) fn pager_error(e: PagerError, id: Option<String>) -> Reply {
    let mut r = match &e {
        PagerError::Invalid(i) => Reply::invalid(i),
        PagerError::NoRoute(_) => {
            Reply::error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), None)
        }
        PagerError::NotFound { .. } => {
            Reply::error(StatusCode::NOT_FOUND, e.to_string(), Some("name".into()))
        }
        // The sender retries: nothing was acknowledged, and the retry
        // finishes what this attempt left owed.
        _ => Reply::error(StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e), None),
    };
    r.log.id = id;
    r
}

/// Carries out a webhook's action.
async fn act(app: &Shared, action: Action, started: Instant) -> Reply {
    match action {
        Action::Raise(req) => {
            let id = req.id.clone();
            let deadline = started + SPEECH_BUDGET;
            let r = pager_call(app, Some(id), move |p| {
                p.raise(&req, Some(deadline))
                    .map(|o| Report::of_raise(&req.id, &o))
            })
            .await;
            match r {
                Err(reply) => reply,
                Ok(rep) => Reply::report(rep),
            }
        }
        Action::Resolve { id } => {
            let key = id.clone();
            let r = pager_call(app, Some(id), move |p| {
                p.resolve(&key)
                    .map(|c| Report::of_change("resolved", &key, &c))
            })
            .await;
            match r {
                Err(reply) => reply,
                Ok(rep) => Reply::report(rep),
            }
        }
    }
}

async fn alertmanager(State(app): State<Shared>, body: Body) -> Reply {
    group(&app, "am", body).await
}

async fn grafana(State(app): State<Shared>, body: Body) -> Reply {
    group(&app, "gf", body).await
}

async fn group(app: &Shared, prefix: &str, body: Body) -> Reply {
    let started = Instant::now();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let p: AmPayload = match parse(&body) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if prefix == "am" && p.version.as_deref().is_some_and(|v| v != "4") {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "only version 4 of the Alertmanager webhook is known",
            Some("version".into()),
        );
    }
    match payload::from_group(prefix, &p) {
        Ok(a) => act(app, a, started).await,
        Err(e) => Reply::invalid(&e),
    }
}

async fn generic(State(app): State<Shared>, body: Body) -> Reply {
    let started = Instant::now();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let g: Generic = match parse(&body) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match payload::from_generic(&g) {
        Ok(a) => act(&app, a, started).await,
        Err(e) => Reply::invalid(&e),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: Option<String>,
}

async fn list(State(app): State<Shared>, Query(q): Query<ListQuery>) -> Reply {
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "yes" | ""));
    match pager_call(&app, None, move |p| p.list(all)).await {
        Err(r) => r,
        Ok(v) => Reply::new(
            StatusCode::OK,
            serde_json::to_value(&v).unwrap_or(Value::Null),
            None,
            "listed",
        ),
    }
}

fn no_such_alert() -> Reply {
    Reply::error(StatusCode::NOT_FOUND, "no such alert", Some("id".into()))
}

async fn show(State(app): State<Shared>, Path(id): Path<String>) -> Reply {
    let key = id.clone();
    match pager_call(&app, None, move |p| p.show(&key)).await {
        Err(r) => r,
        Ok(None) => no_such_alert(),
        Ok(Some(a)) => Reply::new(
            StatusCode::OK,
            serde_json::to_value(&a).unwrap_or(Value::Null),
            Some(id),
            "shown",
        ),
    }
}

#[derive(Deserialize, Default)]
struct AckBody {
    #[serde(default)]
    by: Option<String>,
}

async fn ack(State(app): State<Shared>, Path(id): Path<String>, body: Body) -> Reply {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let b: AckBody = if body.iter().all(u8::is_ascii_whitespace) {
        AckBody::default()
    } else {
        match parse(&body) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
    let by = b.by.unwrap_or_else(|| "http".into());
    if by.is_empty() || by.len() > 64 || by.chars().any(char::is_control) {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "by: 1-64 characters, no control characters",
            Some("by".into()),
        );
    }
    let key = id.clone();
    match pager_call(&app, Some(id), move |p| {
        p.ack(&key, &by, crate::alert::Via::Http)
            .map(|c| (c.is_some(), Report::of_change("acked", &key, &c)))
    })
    .await
    {
        Err(r) => r,
        Ok((false, _)) => no_such_alert(),
        Ok((true, rep)) => Reply::report(rep),
    }
}

/// `GET /heartbeats`: every configured heartbeat.
async fn heartbeats(State(app): State<Shared>) -> Reply {
    match pager_call(&app, None, |p| p.heartbeats(unix_now())).await {
        Err(r) => r,
        Ok(v) => Reply::new(StatusCode::OK, json!({ "heartbeats": v }), None, "listed"),
    }
}

/// `GET /heartbeats/{name}`.
async fn heartbeat(State(app): State<Shared>, Path(name): Path<String>) -> Reply {
    match pager_call(&app, None, move |p| p.heartbeat(&name, unix_now())).await {
        Err(r) => r,
        Ok(v) => Reply::new(
            StatusCode::OK,
            serde_json::to_value(&v).unwrap_or(Value::Null),
            None,
            "shown",
        ),
    }
}

/// `POST /heartbeats/{name}`: a ping. Any body (up to the usual limit) is
/// read and ignored, so Alertmanager's webhook for its `Watchdog` alert
/// can point straight here.
async fn ping(State(app): State<Shared>, Path(name): Path<String>, body: Body) -> Reply {
    if let Err(r) = read_body(body).await {
        return r;
    }
    match pager_call(&app, None, move |p| p.ping(&name, unix_now())).await {
        Err(r) => r,
        Ok(v) => Reply::new(
            StatusCode::OK,
            serde_json::to_value(&v).unwrap_or(Value::Null),
            None,
            v.status,
        ),
    }
}

/// 200 when the database and the spool can be written and the spool owes
/// nothing for 30 s or more; 503 with the reason otherwise.
async fn healthz(State(app): State<Shared>) -> Reply {
    match with_pager(&app, |p| p.health(unix_now())).await {
        Err(r) => r,
        Ok(Ok(())) => Reply::new(StatusCode::OK, json!({"status": "ok"}), None, "healthy"),
        Ok(Err(e)) => Reply::new(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unhealthy", "error": e}),
            None,
            "unhealthy",
        ),
    }
}

/// Prometheus text format: alert and call totals read from the database
/// (several processes write it), requests counted here.
async fn metrics(State(app): State<Shared>) -> Response {
    let r = pager_call(&app, None, |p| {
        p.counts()
            .and_then(|c| p.heartbeats(unix_now()).map(|h| (c, h)))
    })
    .await;
    let (counts, hbs) = match r {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let requests = app
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let mut r = (StatusCode::OK, exposition(&counts, &hbs, &requests)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// The metrics text: each family's `HELP` and `TYPE` right before its
/// samples. Every `_total` is a counter that never goes down.
pub fn exposition(
    c: &Counts,
    hbs: &[crate::alert::pager::HeartbeatView],
    requests: &BTreeMap<(String, u16), u64>,
) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (suffix_labels, value) in samples {
            let _ = writeln!(out, "{name}{suffix_labels} {value}");
        }
    };
    let one = |v: i64| vec![(String::new(), v.to_string())];
    family(
        "autodial_alerts_raised_total",
        "counter",
        "Alert episodes raised.",
        &one(c.raised),
    );
    family(
        "autodial_alerts_acknowledged_total",
        "counter",
        "Alert episodes acknowledged.",
        &one(c.acked),
    );
    family(
        "autodial_alerts_resolved_total",
        "counter",
        "Alert episodes resolved.",
        &one(c.resolved),
    );
    family(
        "autodial_alerts_unacknowledged_total",
        "counter",
        "Alert episodes whose chain ran out unacknowledged (counted when it ran out, kept after a late ack).",
        &one(c.unacknowledged),
    );
    let by_state: Vec<(String, String)> = ["firing", "acked", "resolved", "unacknowledged"]
        .iter()
        .map(|state| {
            let n = c
                .open_by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            (format!("{{state=\"{state}\"}}"), n.to_string())
        })
        .collect();
    family(
        "autodial_alerts",
        "gauge",
        "Alerts by the state of their current episode.",
        &by_state,
    );
    family(
        "autodial_calls_planned_total",
        "counter",
        "Calls planned.",
        &one(c.calls_planned),
    );
    let calls: Vec<(String, String)> = c
        .calls
        .iter()
        .map(|(o, n)| (format!("{{outcome=\"{}\"}}", label(o)), n.to_string()))
        .collect();
    family(
        "autodial_calls",
        "gauge",
        "Planned calls by their outcome now (scheduled ones move on).",
        &calls,
    );
    use crate::heartbeat::HbState;
    let states = [
        HbState::NeverPinged,
        HbState::Healthy,
        HbState::Expired,
        HbState::Paused,
    ];
    let by_state: Vec<(String, String)> = states
        .iter()
        .map(|s| {
            let n = hbs.iter().filter(|h| h.state == *s).count();
            (format!("{{state=\"{s}\"}}"), n.to_string())
        })
        .collect();
    family(
        "autodial_heartbeats",
        "gauge",
        "Configured heartbeats by state (never_pinged ones are not armed).",
        &by_state,
    );
    let each: Vec<(String, String)> = hbs
        .iter()
        .flat_map(|h| {
            states.iter().map(move |s| {
                (
                    format!("{{name=\"{}\",state=\"{s}\"}}", label(&h.name)),
                    u8::from(h.state == *s).to_string(),
                )
            })
        })
        .collect();
    // (a family without samples is left out: parsers take it for a typo)
    if !each.is_empty() {
        family(
            "autodial_heartbeat_state",
            "gauge",
            "1 for each heartbeat's state, 0 for the others.",
            &each,
        );
    }
    let since: Vec<(String, String)> = hbs
        .iter()
        .filter_map(|h| {
            h.seconds_since_ping
                .map(|s| (format!("{{name=\"{}\"}}", label(&h.name)), s.to_string()))
        })
        .collect();
    if !since.is_empty() {
        family(
            "autodial_heartbeat_seconds_since_ping",
            "gauge",
            "Seconds since each heartbeat's last ping (absent: never pinged).",
            &since,
        );
    }
    let reqs: Vec<(String, String)> = requests
        .iter()
        .map(|((path, status), n)| {
            (
                format!("{{endpoint=\"{}\",status=\"{status}\"}}", label(path)),
                n.to_string(),
            )
        })
        .collect();
    family(
        "autodial_http_requests_total",
        "counter",
        "HTTP requests by endpoint and status.",
        &reqs,
    );
    let mut hist = Vec::new();
    for b in [10, 30, 60, 120, 300, 600, 1800, 3600] {
        let n = c.ack_delays.iter().filter(|&&d| d <= b).count();
        hist.push((format!("_bucket{{le=\"{b}\"}}"), n.to_string()));
    }
    hist.push((
        "_bucket{le=\"+Inf\"}".into(),
        c.ack_delays.len().to_string(),
    ));
    hist.push(("_sum".into(), c.ack_delays.iter().sum::<i64>().to_string()));
    hist.push(("_count".into(), c.ack_delays.len().to_string()));
    family(
        "autodial_ack_seconds",
        "histogram",
        "Time from raise to acknowledgement.",
        &hist,
    );
    out
}

/// A Prometheus label value: `\`, `"` and line feeds escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `Authorization: Bearer <token>`, compared in constant time; every
/// request but `GET` or `HEAD /healthz` needs it when a token is set.
async fn auth(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    if matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let ok = token_ok(&req, token);
    if !ok {
        let mut r = Reply::error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is needed",
            None,
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

/// The bearer token of `req` is `token` (compared in constant time); a
/// calendar feed (`GET *.ics`) may carry it as `?token=` instead:
/// calendar apps subscribe to a URL and send no header.
fn token_ok(req: &Request, token: &[u8]) -> bool {
    let same = |given: &[u8]| given.len() == token.len() && bool::from(given.ct_eq(token));
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    let feed = *req.method() == Method::GET && req.uri().path().ends_with(".ics");
    same(given)
        || feed
            && req
                .uri()
                .query()
                .into_iter()
                .flat_map(|q| q.split('&'))
                .filter_map(|kv| kv.strip_prefix("token="))
                .any(|t| same(t.as_bytes()))
}

/// Answers that do not come from our handlers (axum's 405, the body
/// limit's 413) become JSON `{"error", "field"}` like the rest.
async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    // (the status page's own pages stay HTML)
    let is_json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return resp;
    }
    let allow = resp.headers().get(header::ALLOW).cloned();
    let msg = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!("the body is larger than {MAX_BODY} bytes"),
        StatusCode::METHOD_NOT_ALLOWED => "method not allowed on this endpoint".into(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut r = Reply::error(status, msg, None).into_response();
    if let Some(a) = allow {
        r.headers_mut().insert(header::ALLOW, a);
    }
    r
}

async fn not_found() -> Reply {
    Reply::error(StatusCode::NOT_FOUND, "no such endpoint", None)
}

async fn method_not_allowed() -> Reply {
    Reply::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint",
        None,
    )
}

/// One log line per request (stderr: journald), and the request counters
/// by matched route (never the raw path: scanners would mint label values).
async fn log_requests(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let raw = req.uri().path().as_bytes();
    let mut path = escape_bytes(&raw[..raw.len().min(LOGGED_PATH)]);
    if raw.len() > LOGGED_PATH {
        path.push_str("...");
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let info = resp
        .extensions()
        .get::<LogInfo>()
        .cloned()
        .unwrap_or_default();
    *app.requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((route, status))
        .or_default() += 1;
    // The id is logged only when it is a checked one (never a raw path
    // piece: the path is already on the line).
    let id = info
        .id
        .filter(|i| crate::alert::valid_id(i))
        .unwrap_or_else(|| "-".into());
    log::info!(
        "{method} {path} {status} id={id} outcome={} {:.1}ms",
        if info.outcome.is_empty() {
            "-"
        } else {
            info.outcome
        },
        start.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

/// The router, for tests (`tower::ServiceExt::oneshot`) and `serve`.
pub fn router(pager: Arc<Pager>, token: Option<Vec<u8>>) -> Router {
    let app = Arc::new(App {
        pager,
        token,
        sessions: Default::default(),
        requests: Mutex::new(BTreeMap::new()),
    });
    let api = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/alertmanager", post(alertmanager))
        .route("/grafana", post(grafana))
        .route("/alerts", get(list).post(generic))
        .route("/alerts/{id}", get(show))
        .route("/alerts/{id}/ack", post(ack))
        .route("/heartbeats", get(heartbeats))
        .route("/heartbeats/{name}", get(heartbeat).post(ping))
        .route("/oncall", get(oncall_api::now))
        .route("/oncall/overrides", get(oncall_api::list_overrides))
        .route(
            "/oncall/overrides/{id}",
            axum::routing::delete(oncall_api::remove_override),
        )
        .route("/oncall/contacts/{file}", get(oncall_api::contact_feed))
        .route("/oncall/{file}", get(oncall_api::schedule_feed))
        .route("/oncall/{schedule}/shifts", get(oncall_api::shifts))
        .route(
            "/oncall/{schedule}/overrides",
            post(oncall_api::add_override),
        )
        // the bearer token on the API's routes
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    api
        // the status page signs in with a session of its own
        .merge(super::ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // the log around every route and the fallbacks (it runs first:
        // refused and unknown requests are logged and counted too, by
        // matched route, "unmatched" for the rest)
        .layer(middleware::from_fn_with_state(app.clone(), log_requests))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        // the body limit's own 413 becomes JSON too
        .layer(middleware::from_fn(json_errors))
        // outermost: every answer carries the security headers
        .layer(middleware::from_fn(super::ui::security_headers))
        .with_state(app)
}

/// Re-plans the calls to come for who is on call now; logs what changed.
fn replan(p: &Pager) {
    match p.replan_now() {
        Ok(r) => {
            if !r.replanned.is_empty() {
                log::info!(
                    "re-planned {} step(s) for who is on call now",
                    r.replanned.len()
                );
            }
        }
        Err(e) => log::warn!("re-plan: {}", error_chain(&e)),
    }
}

/// Renders ahead what the calls and the alert line say besides the
/// messages (new contacts, names, languages); logs what failed.
fn prepare(p: &Pager) {
    let r = p.prepare(None);
    if r.rendered > 0 {
        log::info!(
            "rendered {} phrase(s) and name(s) ahead ({})",
            r.rendered,
            r.languages.join(", ")
        );
    }
    for e in r.errors {
        log::warn!("rendering ahead: {e}; the calls fall back to stock prompts");
    }
}

/// SIGHUP: reads the config again; a bad one is refused with one log line
/// and the old one stays in force; then re-plans.
pub fn reload(p: &Pager, path: &std::path::Path) {
    let cfg = match crate::alert::config::AlertsConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            log::error!("reload refused, the old config stays in force: {e}");
            return;
        }
    };
    if let Err(e) = p.reload(cfg) {
        log::error!(
            "reload refused, the old config stays in force: {}: {e}",
            path.display()
        );
        return;
    }
    log::info!("reloaded {}", path.display());
    replan(p);
    // heartbeats gone from the config are disarmed now, new ones listed
    for e in p.settle_heartbeats(unix_now()) {
        log::warn!("heartbeats: {}", error_chain(&e));
    }
    prepare(p);
}

/// Waits for SIGTERM (`term`, registered before the listener is bound, so
/// a SIGTERM at any moment after that stops the server gracefully) or
/// Ctrl-C.
async fn terminated(term: Option<tokio::signal::unix::Signal>) {
    let term = async {
        match term {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime
/// does); returns the soft limit now in force.
fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let (cur, max) = (lim.current.unwrap_or(u64::MAX), lim.maximum);
    if max.is_none_or(|m| m > cur) {
        let want = Rlimit {
            current: max,
            maximum: max,
        };
        if setrlimit(Resource::Nofile, want).is_ok() {
            return max.unwrap_or(u64::MAX);
        }
    }
    cur
}

/// How many connections to serve at once under a descriptor limit.
pub fn connection_cap(nofile: u64) -> usize {
    nofile.saturating_sub(FD_RESERVE).clamp(16, MAX_CONNECTIONS) as usize
}

/// Serves until SIGTERM (or Ctrl-C): then stops accepting, kills renders
/// in flight (their alerts take the fallback prompt), lets requests in
/// flight finish (at most [`SHUTDOWN_GRACE`]), and returns.
pub fn serve(opts: Options) -> Result<(), String> {
    let pager = Arc::new(opts.pager);
    let cap = connection_cap(raise_nofile());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let p2 = pager.clone();
    let r = rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // the handlers first: a signal once we listen is never the default
        // action (which would kill the process mid-request)
        let term = signal(SignalKind::terminate()).ok();
        let hup = signal(SignalKind::hangup()).ok();
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        log::info!(
            "listening on {}{} (at most {cap} connections)",
            opts.listen,
            if opts.token.is_some() {
                " (bearer token required)"
            } else {
                ""
            }
        );
        let app = router(pager.clone(), opts.token);
        // Who is on call may have changed while we were stopped: re-plan
        // now, and again after each SIGHUP reload.
        let p = pager.clone();
        let _ = tokio::task::spawn_blocking(move || replan(&p)).await;
        // (in the background: one render slot at a time, never in the way)
        let p = pager.clone();
        tokio::task::spawn_blocking(move || prepare(&p));
        let p = pager.clone();
        let path = opts.config_path.clone();
        tokio::spawn(async move {
            let Some(mut hup) = hup else {
                return;
            };
            while hup.recv().await.is_some() {
                let (p, path) = (p.clone(), path.clone());
                let _ = tokio::task::spawn_blocking(move || reload(&p, &path)).await;
            }
        });
        // Settle what the spool owes, every few seconds.
        let retry = pager.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RETRY_EVERY).await;
                let p = retry.clone();
                if let Ok(f) = tokio::task::spawn_blocking(move || p.finish_all()).await {
                    if f.done > 0 {
                        log::info!("settled what the spool owed {} alert(s)", f.done);
                    }
                    for e in f.failed {
                        log::warn!("still owed: {}", error_chain(&e));
                    }
                }
            }
        });
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let slots = Arc::new(tokio::sync::Semaphore::new(cap));
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .keep_alive(true);
        let stop = terminated(term);
        tokio::pin!(stop);
        loop {
            let permit = tokio::select! {
                _ = &mut stop => break,
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (stream, peer) = tokio::select! {
                _ = &mut stop => break,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and the like: wait a moment, keep serving
                        log::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            // the peer's address for the status page's sign-in limits
            let svc =
                hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
                    app.clone(),
                    move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(super::ui::Peer(peer));
                        req
                    },
                ));
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            let conn = graceful.watch(conn);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(permit);
            });
        }
        log::info!("stopping (requests in flight may finish)");
        pager.stop_renders();
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            log::warn!("requests still open after {SHUTDOWN_GRACE:?}; stopping anyway");
        }
        Ok(())
    });
    p2.stop_renders();
    rt.shutdown_timeout(Duration::from_secs(1));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_below_the_descriptor_limit() {
        assert_eq!(connection_cap(1024), 896);
        assert_eq!(connection_cap(65536), 16_384);
        assert_eq!(connection_cap(100), 16);
    }

    #[test]
    fn every_family_has_help_and_type_right_before_its_samples() {
        let c = Counts {
            raised: 3,
            calls: vec![("scheduled".into(), 2), ("no_answer".into(), 1)],
            ack_delays: vec![5, 70],
            ..Default::default()
        };
        let mut req = BTreeMap::new();
        req.insert(("/healthz".to_string(), 200u16), 4u64);
        let hbs = [crate::alert::pager::HeartbeatView {
            name: "prom".into(),
            state: crate::heartbeat::HbState::Healthy,
            timeout_seconds: 300,
            last_ping: Some(1000),
            seconds_since_ping: Some(12),
            deadline: Some(1300),
            timer_file: None,
            timer: "pending",
        }];
        let text = exposition(&c, &hbs, &req);
        assert!(text.contains("autodial_heartbeat_state{name=\"prom\",state=\"healthy\"} 1"));
        assert!(text.contains("autodial_heartbeat_seconds_since_ping{name=\"prom\"} 12"));
        let mut typed: Option<String> = None;
        let mut helped: Option<String> = None;
        let mut families = 0;
        for line in text.lines() {
            if let Some(r) = line.strip_prefix("# HELP ") {
                helped = r.split(' ').next().map(str::to_string);
                typed = None;
            } else if let Some(r) = line.strip_prefix("# TYPE ") {
                let name = r.split(' ').next().unwrap().to_string();
                assert_eq!(helped.as_deref(), Some(name.as_str()), "{line}");
                typed = Some(name);
                families += 1;
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                let fam = typed.as_deref().expect(line);
                assert!(name.starts_with(fam), "{name} under {fam}");
                if name.ends_with("_total") {
                    assert!(text.contains(&format!("# TYPE {name} counter")));
                }
            }
        }
        assert_eq!(families, 12);
        assert!(text.contains("autodial_ack_seconds_bucket{le=\"60\"} 1\n"));
        assert!(text.contains("autodial_calls{outcome=\"scheduled\"} 2\n"));
    }
}
