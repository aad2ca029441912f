//! The HTTP receiver: axum on tokio. Every request that changes something
//! runs the same pager operation the command line runs, on a blocking
//! thread (SQLite and the spool are synchronous), and a 2xx is sent only
//! once the alert is committed and its call files are published.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
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
use tower_http::timeout::TimeoutLayer;

use super::payload::{self, Action, AmPayload, Generic};
use crate::alert::config::AlertsConfig;
use crate::alert::pager::{Pager, PagerError, RaiseOutcome};
use crate::alert::store::Change;
use crate::escape_bytes;

/// Largest request body.
pub const MAX_BODY: usize = 1 << 20;
/// A request taking longer is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// After SIGTERM, requests in flight get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What `autodial serve` was asked to do.
pub struct Options {
    pub listen: SocketAddr,
    pub token: Option<Vec<u8>>,
    pub config: AlertsConfig,
}

struct App {
    pager: Mutex<Pager>,
    token: Option<Vec<u8>>,
    spool_dir: PathBuf,
    /// Requests by matched route and status.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
}

type Shared = Arc<App>;

/// What a handler tells the request log.
#[derive(Clone, Default)]
struct LogInfo {
    id: Option<String>,
    outcome: &'static str,
}

/// A JSON answer with its status, and what to log.
struct Reply {
    status: StatusCode,
    body: Value,
    log: LogInfo,
}

impl Reply {
    fn new(status: StatusCode, body: Value, id: Option<String>, outcome: &'static str) -> Reply {
        Reply {
            status,
            body,
            log: LogInfo { id, outcome },
        }
    }
    /// A 400 for a payload refused by name: our messages start with the
    /// field at fault and a colon (`id: ...`, `status: ...`).
    fn invalid(msg: String) -> Reply {
        let field = msg.split(':').next().map(|f| f.trim().to_string());
        Reply::error(StatusCode::BAD_REQUEST, msg, field)
    }
    fn error(status: StatusCode, msg: impl Into<String>, field: Option<String>) -> Reply {
        let msg = msg.into();
        Reply::new(
            status,
            json!({"error": msg, "field": field}),
            None,
            "rejected",
        )
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        r.extensions_mut().insert(self.log);
        r
    }
}

/// Reads a JSON body into `T`; a 400 naming the field at fault otherwise.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Reply> {
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

/// Runs `f` with the pager on a blocking thread.
async fn with_pager<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce(&mut Pager) -> T + Send + 'static,
) -> Result<T, Reply> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        let mut p = app.pager.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    })
    .await
    .map_err(|e| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None))
}

fn pager_error(e: PagerError, id: Option<String>) -> Reply {
    let mut r = match &e {
        PagerError::Invalid(m) => Reply::invalid(m.clone()),
        PagerError::NoRoute(_) => {
            Reply::error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), None)
        }
        // The sender retries: nothing was acknowledged.
        PagerError::Store(_) | PagerError::Spool(_) => {
            Reply::error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None)
        }
    };
    r.log.id = id;
    r
}

/// Carries out a webhook's action.
async fn act(app: &Shared, action: Action) -> Reply {
    match action {
        Action::Raise(req) => {
            let id = req.id.clone();
            let r = with_pager(app, move |p| p.raise(&req)).await;
            match r {
                Err(reply) => reply,
                Ok(Err(e)) => pager_error(e, Some(id)),
                Ok(Ok(RaiseOutcome::Raised {
                    episode,
                    calls,
                    speech_error,
                })) => Reply::new(
                    StatusCode::OK,
                    json!({"status": "raised", "id": id, "episode": episode,
                           "calls": calls.len(), "speech_error": speech_error}),
                    Some(id),
                    "raised",
                ),
                Ok(Ok(RaiseOutcome::Updated {
                    episode,
                    state,
                    changed,
                })) => {
                    let outcome = if changed { "updated" } else { "duplicate" };
                    Reply::new(
                        StatusCode::OK,
                        json!({"status": outcome, "id": id, "episode": episode, "state": state.as_str()}),
                        Some(id),
                        outcome,
                    )
                }
            }
        }
        Action::Resolve { id } => {
            let key = id.clone();
            let r = with_pager(app, move |p| p.resolve(&key)).await;
            match r {
                Err(reply) => reply,
                Ok(Err(e)) => pager_error(e, Some(id)),
                Ok(Ok(None)) => Reply::new(
                    StatusCode::OK,
                    json!({"status": "unknown", "id": id}),
                    Some(id),
                    "unknown",
                ),
                Ok(Ok(Some(Change::Done { files }))) => Reply::new(
                    StatusCode::OK,
                    json!({"status": "resolved", "id": id, "calls_cancelled": files.len()}),
                    Some(id),
                    "resolved",
                ),
                Ok(Ok(Some(Change::Already { state, .. }))) => Reply::new(
                    StatusCode::OK,
                    json!({"status": "duplicate", "id": id, "state": state.as_str()}),
                    Some(id),
                    "duplicate",
                ),
            }
        }
    }
}

async fn alertmanager(State(app): State<Shared>, body: Bytes) -> Reply {
    group(&app, "am", &body).await
}

async fn grafana(State(app): State<Shared>, body: Bytes) -> Reply {
    group(&app, "gf", &body).await
}

async fn group(app: &Shared, prefix: &str, body: &[u8]) -> Reply {
    let p: AmPayload = match parse(body) {
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
        Ok(a) => act(app, a).await,
        Err(e) => Reply::invalid(e),
    }
}

async fn generic(State(app): State<Shared>, body: Bytes) -> Reply {
    let g: Generic = match parse(&body) {
        Ok(g) => g,
        Err(r) => return r,
    };
    match payload::from_generic(&g) {
        Ok(a) => act(&app, a).await,
        Err(e) => Reply::invalid(e),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    all: Option<String>,
}

async fn list(State(app): State<Shared>, Query(q): Query<ListQuery>) -> Reply {
    let all = matches!(q.all.as_deref(), Some("1" | "true" | "yes" | ""));
    match with_pager(&app, move |p| p.store.list(all)).await {
        Err(r) => r,
        Ok(Err(e)) => pager_error(e.into(), None),
        Ok(Ok(v)) => Reply::new(
            StatusCode::OK,
            Value::Array(v.iter().map(|a| a.to_json(false)).collect()),
            None,
            "listed",
        ),
    }
}

async fn show(State(app): State<Shared>, Path(id): Path<String>) -> Reply {
    let key = id.clone();
    match with_pager(&app, move |p| p.store.show(&key)).await {
        Err(r) => r,
        Ok(Err(e)) => pager_error(e.into(), None),
        Ok(Ok(None)) => {
            let mut r = Reply::error(StatusCode::NOT_FOUND, "no such alert", Some("id".into()));
            r.log.id = Some(escape_bytes(id.as_bytes()));
            r
        }
        Ok(Ok(Some(a))) => Reply::new(StatusCode::OK, a.to_json(true), Some(id), "shown"),
    }
}

#[derive(Deserialize, Default)]
struct AckBody {
    #[serde(default)]
    by: Option<String>,
}

async fn ack(State(app): State<Shared>, Path(id): Path<String>, body: Bytes) -> Reply {
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
    match with_pager(&app, move |p| p.ack(&key, &by)).await {
        Err(r) => r,
        Ok(Err(e)) => pager_error(e, Some(id)),
        Ok(Ok(None)) => {
            let mut r = Reply::error(StatusCode::NOT_FOUND, "no such alert", Some("id".into()));
            r.log.id = Some(escape_bytes(id.as_bytes()));
            r
        }
        Ok(Ok(Some(Change::Done { files }))) => Reply::new(
            StatusCode::OK,
            json!({"status": "acked", "id": id, "calls_cancelled": files.len()}),
            Some(id),
            "acked",
        ),
        Ok(Ok(Some(Change::Already { state, by }))) => Reply::new(
            StatusCode::OK,
            json!({"status": "duplicate", "id": id, "state": state.as_str(), "acked_by": by}),
            Some(id),
            "duplicate",
        ),
    }
}

/// 200 when the database and the spool can be written, 503 with the
/// reason otherwise.
async fn healthz(State(app): State<Shared>) -> Reply {
    let spool = app.spool_dir.clone();
    let r = with_pager(&app, move |p| -> Result<(), String> {
        p.store.check_writable().map_err(|e| e.to_string())?;
        for d in ["outgoing", "tmp"] {
            let path = spool.join(d);
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| format!("{}: bad path", path.display()))?;
            // SAFETY: a NUL-terminated path.
            if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
                return Err(format!(
                    "{}: not writable: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(())
    })
    .await;
    match r {
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
    let counts = with_pager(&app, |p| p.store.counts()).await;
    let counts = match counts {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return pager_error(e.into(), None).into_response(),
        Err(r) => return r.into_response(),
    };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    };
    metric(
        "autodial_alerts_raised_total",
        "counter",
        "Alert episodes raised.",
    );
    metric(
        "autodial_alerts_acknowledged_total",
        "counter",
        "Alert episodes acknowledged.",
    );
    metric(
        "autodial_alerts_resolved_total",
        "counter",
        "Alert episodes resolved.",
    );
    metric(
        "autodial_alerts_unacknowledged_total",
        "counter",
        "Alert episodes whose chain ran out unacknowledged.",
    );
    metric(
        "autodial_alerts",
        "gauge",
        "Alerts by the state of their current episode.",
    );
    metric(
        "autodial_calls_total",
        "counter",
        "Planned calls by outcome.",
    );
    metric(
        "autodial_http_requests_total",
        "counter",
        "HTTP requests by endpoint and status.",
    );
    metric(
        "autodial_ack_seconds",
        "histogram",
        "Time from raise to acknowledgement.",
    );
    let mut body = String::new();
    body.push_str(&format!("autodial_alerts_raised_total {}\n", counts.raised));
    body.push_str(&format!(
        "autodial_alerts_acknowledged_total {}\n",
        counts.acked
    ));
    body.push_str(&format!(
        "autodial_alerts_resolved_total {}\n",
        counts.resolved
    ));
    body.push_str(&format!(
        "autodial_alerts_unacknowledged_total {}\n",
        counts.unacknowledged
    ));
    for state in ["firing", "acked", "resolved", "unacknowledged"] {
        let n = counts
            .open_by_state
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        body.push_str(&format!("autodial_alerts{{state=\"{state}\"}} {n}\n"));
    }
    for (outcome, n) in &counts.calls {
        body.push_str(&format!(
            "autodial_calls_total{{outcome=\"{}\"}} {n}\n",
            label(outcome)
        ));
    }
    for ((path, status), n) in app
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        body.push_str(&format!(
            "autodial_http_requests_total{{endpoint=\"{}\",status=\"{status}\"}} {n}\n",
            label(path)
        ));
    }
    let buckets = [10, 30, 60, 120, 300, 600, 1800, 3600];
    for b in buckets {
        let n = counts.ack_delays.iter().filter(|&&d| d <= b).count();
        body.push_str(&format!("autodial_ack_seconds_bucket{{le=\"{b}\"}} {n}\n"));
    }
    body.push_str(&format!(
        "autodial_ack_seconds_bucket{{le=\"+Inf\"}} {}\n",
        counts.ack_delays.len()
    ));
    body.push_str(&format!(
        "autodial_ack_seconds_sum {}\nautodial_ack_seconds_count {}\n",
        counts.ack_delays.iter().sum::<i64>(),
        counts.ack_delays.len()
    ));
    out.push_str(&body);
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// A Prometheus label value: `\`, `"` and line feeds escaped.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `Authorization: Bearer <token>`, compared in constant time; every
/// request but `GET /healthz` needs it when a token is set.
async fn auth(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = &app.token else {
        return next.run(req).await;
    };
    if req.method() == Method::GET && req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    let ok = given.len() == token.len() && bool::from(given.ct_eq(token));
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

/// One log line per request (stderr: journald), and the request counters
/// by matched route (never the raw path: scanners would mint label values).
async fn log_requests(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = escape_bytes(req.uri().path().as_bytes());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let start = std::time::Instant::now();
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
    eprintln!(
        "{method} {path} {status} id={} outcome={} {:.1}ms",
        info.id
            .as_deref()
            .map_or("-".to_string(), |i| escape_bytes(i.as_bytes())),
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
pub fn router(pager: Pager, token: Option<Vec<u8>>) -> Router {
    let spool_dir = pager.cfg.spool_dir.clone();
    let app = Arc::new(App {
        pager: Mutex::new(pager),
        token,
        spool_dir,
        requests: Mutex::new(BTreeMap::new()),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/alertmanager", post(alertmanager))
        .route("/grafana", post(grafana))
        .route("/alerts", get(list).post(generic))
        .route("/alerts/{id}", get(show))
        .route("/alerts/{id}/ack", post(ack))
        // (route layers: the matched path is known; the later one runs
        // first, so refused requests are logged and counted too)
        .route_layer(middleware::from_fn_with_state(app.clone(), auth))
        .route_layer(middleware::from_fn_with_state(app.clone(), log_requests))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(app)
}

async fn terminated() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Serves until SIGTERM (or Ctrl-C): then stops accepting, lets requests in
/// flight finish (at most [`SHUTDOWN_GRACE`]), and returns.
pub fn serve(opts: Options) -> Result<(), String> {
    let mut pager = Pager::open(opts.config).map_err(|e| e.to_string())?;
    match pager.complete_pending() {
        Ok(0) => {}
        Ok(n) => eprintln!("autodial serve: completed {n} raise(s) cut short earlier"),
        Err(e) => return Err(format!("cannot complete an earlier raise: {e}")),
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        eprintln!(
            "autodial serve: listening on {}{}",
            opts.listen,
            if opts.token.is_some() { " (bearer token required)" } else { "" }
        );
        let app = router(pager, opts.token);
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            terminated().await;
            eprintln!("autodial serve: stopping (requests in flight may finish)");
            let _ = tx.send(true);
        });
        let mut stop = rx.clone();
        let mut deadline = rx;
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
        });
        tokio::select! {
            r = server => r.map_err(|e| format!("server: {e}")),
            _ = async move {
                let _ = deadline.wait_for(|v| *v).await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => {
                eprintln!("autodial serve: requests still open after {SHUTDOWN_GRACE:?}; stopping anyway");
                Ok(())
            }
        }
    })
}
