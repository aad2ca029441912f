//! The status page (`/`, `/ui/...`): what is firing, who was called, who
//! is on call; Acknowledge, Resolve and overrides from the browser. The
//! same [`crate::alert::pager::Pager`] calls as the API and the command
//! line; server-rendered ([`pages`]), no JavaScript needed (a small
//! script localizes times and refreshes), nothing from another origin.
//!
//! Sign-in takes the service's token and a contact's name and sets a
//! session cookie (random, kept server-side, 12 h). Every change is a
//! POST carrying the session's CSRF token, from the same origin
//! (`Origin`, `Sec-Fetch-Site`); anything else is refused and changes
//! nothing. The JSON API and its bearer token are untouched.

pub mod pages;
pub mod session;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;

use super::server::{with_pager, Shared};
use crate::alert::pager::unix_now;
use crate::alert::Via;
use pages::{Me, OnCallLine, ScheduleView};
use session::{same, Session};

/// The session cookie's name.
pub const COOKIE: &str = "autodial_session";
/// Ended alerts shown on the status page.
pub const RECENT: usize = 20;
/// Days of shifts on the on-call page.
pub const SHIFT_DAYS: i64 = 14;

const CSS: &str = include_str!("app.css");
const JS: &str = include_str!("app.js");
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\">\
<circle cx=\"8\" cy=\"8\" r=\"7\" fill=\"#b3261e\"/></svg>";

/// The peer's address, set by the connection loop (absent in tests that
/// call the router directly).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// The status page's routes (merged after the API's bearer-token layer:
/// they have their own sign-in).
pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route("/", get(index))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/alerts/{id}", get(alert))
        .route("/ui/alerts/{id}/ack", post(ack))
        .route("/ui/alerts/{id}/resolve", post(resolve))
        .route("/ui/oncall", get(oncall))
        .route("/ui/oncall/overrides", post(add_override))
        .route("/ui/oncall/overrides/{id}/remove", post(remove_override))
        .route("/ui/static/app.css", get(css))
        .route("/ui/static/app.js", get(js))
        .route("/ui/static/icon.svg", get(icon))
}

/// Every response: no script or style but our own files, nothing from
/// another origin, never in a frame, no referrer, no sniffing.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn html(status: StatusCode, m: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        m.into_string(),
    )
        .into_response()
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

fn refused(why: &str) -> Response {
    html(
        StatusCode::FORBIDDEN,
        pages::message("Refused", why, None, unix_now()),
    )
}

fn failed(e: impl std::fmt::Display) -> Response {
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message("Something went wrong", &e.to_string(), None, unix_now()),
    )
}

/// The session cookie's value.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .next()
}

/// The live session of this request.
fn session(app: &Shared, headers: &HeaderMap) -> Option<(String, Session)> {
    let id = cookie(headers)?;
    let s = app.sessions.get(id, unix_now())?;
    Some((id.to_string(), s))
}

/// A POST from this site. `Sec-Fetch-Site` decides when the browser
/// sends it (every current one does): `same-origin` (or `none`, typed by
/// the user). Else `Origin`, when sent, must be this host (a `null`
/// origin is refused: with `Referrer-Policy: no-referrer` browsers send
/// it for their own forms, but those browsers send `Sec-Fetch-Site` too).
/// With neither header (a script, an old client) the CSRF token decides.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => {
            let host = headers
                .get(header::HOST)
                .map(|h| h.as_bytes())
                .unwrap_or_default();
            let o = o.as_bytes();
            !host.is_empty()
                && [&b"http://"[..], b"https://"]
                    .iter()
                    .any(|scheme| o.strip_prefix(*scheme) == Some(host))
        }
    }
}

/// A state change's checks: a live session, the same origin, the
/// session's CSRF token. `Err`: the refusal to send (nothing changed).
fn check_post(
    app: &Shared,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(String, Session), &'static str> {
    if !same_origin(headers) {
        return Err("A form from another site: refused, nothing changed.");
    }
    let Some((id, s)) = session(app, headers) else {
        return Err("Not signed in (or the session ended): nothing changed.");
    };
    if !same(csrf, &s.csrf) {
        return Err("The form's token is not this session's: nothing changed.");
    }
    Ok((id, s))
}

/// A form that carries the session's CSRF token.
trait WithCsrf {
    fn csrf(&self) -> &str;
}

/// A state change from the status page, checked before the handler runs
/// ([`check_post`]): the form (a body that is no form is an empty one,
/// and refused), the session's id and the session. Anything else is
/// refused with a 403 and changes nothing.
struct Posted<T> {
    form: T,
    id: String,
    session: Session,
}

impl<T> axum::extract::FromRequest<Shared> for Posted<T>
where
    T: serde::de::DeserializeOwned + Default + WithCsrf + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, app: &Shared) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let form = Form::<T>::from_request(req, app)
            .await
            .map(|Form(f)| f)
            .unwrap_or_default();
        match check_post(app, &headers, form.csrf()) {
            Ok((id, session)) => Ok(Posted { form, id, session }),
            Err(why) => Err(refused(why)),
        }
    }
}

/// A page for the signed-in, else the way to sign in.
async fn signed_in(app: &Shared, headers: &HeaderMap) -> Result<Session, Response> {
    session(app, headers)
        .map(|(_, s)| s)
        .ok_or_else(|| see_other("/ui/login"))
}

#[derive(Deserialize, Default)]
struct Notice {
    m: Option<String>,
}

/// The notice a redirect after a change asks for (a fixed word: nothing
/// of the URL is shown).
fn notice(q: &Notice) -> Option<&'static str> {
    Some(match q.m.as_deref()? {
        "acked" => "Acknowledged.",
        "resolved" => "Resolved.",
        "added" => "Override added.",
        "removed" => "Override removed.",
        _ => return None,
    })
}

async fn index(State(app): State<Shared>, headers: HeaderMap, Query(q): Query<Notice>) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = unix_now();
    let data = with_pager(&app, move |p| {
        let alerts = p.dashboard(RECENT)?;
        let hbs = p.heartbeats(now)?;
        let mut lines = Vec::new();
        for v in p.on_call_now(None, now)? {
            let next = match v.until {
                Some(u) => p
                    .shifts(&v.schedule, None, u, u + 1)?
                    .into_iter()
                    .next()
                    .map(|s| (s.contacts, u)),
                None => None,
            };
            lines.push(OnCallLine {
                schedule: v.schedule,
                now: v.contacts,
                until: v.until,
                next,
            });
        }
        Ok::<_, crate::alert::pager::PagerError>((alerts, hbs, lines))
    })
    .await;
    match data {
        Err(r) => r.into_response(),
        Ok(Err(e)) => failed(crate::error_chain(&e)),
        Ok(Ok((alerts, hbs, lines))) => {
            let me = Me {
                name: &s.name,
                csrf: &s.csrf,
            };
            html(
                StatusCode::OK,
                pages::dashboard(&alerts, &hbs, &lines, &me, notice(&q), now),
            )
        }
    }
}

async fn login_form(State(app): State<Shared>) -> Response {
    let contacts: Vec<String> = app.pager.config().contacts.keys().cloned().collect();
    html(StatusCode::OK, pages::login(&contacts, false, unix_now()))
}

#[derive(Deserialize, Default)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    name: String,
}

async fn login(
    State(app): State<Shared>,
    headers: HeaderMap,
    peer: Option<axum::Extension<Peer>>,
    f: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    // a body that is no form is an empty one: refused below
    let f = f.map(|Form(f)| f).unwrap_or_default();
    if !same_origin(&headers) {
        return refused("A form from another site: refused.");
    }
    let addr = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0 .0.ip());
    let now = unix_now();
    // an address that failed too often waits, right or wrong
    let wait = app.sessions.delay(addr, now);
    if wait > 0 {
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    let cfg = app.pager.config();
    // both checked every time: the answer and its time say nothing of
    // which was wrong
    let token_ok = match &app.token {
        Some(t) => {
            f.token.len() == t.len()
                && bool::from(subtle::ConstantTimeEq::ct_eq(f.token.as_bytes(), &t[..]))
        }
        None => true,
    };
    let name_ok = cfg.contacts.contains_key(&f.name);
    if !(token_ok & name_ok) {
        app.sessions.failed(addr, now);
        log::warn!("sign-in failed from {addr}");
        let contacts: Vec<String> = cfg.contacts.keys().cloned().collect();
        return html(StatusCode::UNAUTHORIZED, pages::login(&contacts, true, now));
    }
    let (id, _) = match app.sessions.create(&f.name, now) {
        Ok(s) => s,
        Err(e) => return failed(e),
    };
    log::info!("{} signed in from {addr}", f.name);
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let c = format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        session::SESSION_SECONDS,
        if secure { "; Secure" } else { "" }
    );
    let mut r = see_other("/");
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize, Default)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

impl WithCsrf for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn logout(State(app): State<Shared>, p: Posted<CsrfForm>) -> Response {
    app.sessions.remove(&p.id);
    let mut r = see_other("/ui/login");
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("autodial_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

async fn alert(
    State(app): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Notice>,
) -> Response {
    let s = match signed_in(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let now = unix_now();
    let key = id.clone();
    match with_pager(&app, move |p| p.history(&key)).await {
        Err(r) => r.into_response(),
        Ok(Err(e)) => failed(crate::error_chain(&e)),
        Ok(Ok(eps)) => {
            let me = Me {
                name: &s.name,
                csrf: &s.csrf,
            };
            let status = if eps.is_empty() {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::OK
            };
            html(status, pages::alert_page(&eps, &me, notice(&q), now))
        }
    }
}

/// Acknowledge or resolve from the page.
async fn change(app: Shared, s: Session, id: String, ack: bool) -> Response {
    if !crate::alert::valid_id(&id) {
        return html(
            StatusCode::NOT_FOUND,
            pages::message("No such alert", "No such alert.", None, unix_now()),
        );
    }
    let (key, by) = (id.clone(), s.name.clone());
    let r = with_pager(&app, move |p| {
        if ack {
            p.ack(&key, &by, Via::Web)
        } else {
            p.resolve(&key)
        }
    })
    .await;
    match r {
        Err(r) => r.into_response(),
        Ok(Err(e)) => failed(crate::error_chain(&e)),
        Ok(Ok(None)) => html(
            StatusCode::NOT_FOUND,
            pages::message("No such alert", "No such alert.", None, unix_now()),
        ),
        Ok(Ok(Some(_))) => {
            log::info!(
                "alert {id} {} by {} on the status page",
                if ack { "acknowledged" } else { "resolved" },
                s.name
            );
            see_other(&format!(
                "/ui/alerts/{id}?m={}",
                if ack { "acked" } else { "resolved" }
            ))
        }
    }
}

async fn ack(State(app): State<Shared>, Path(id): Path<String>, p: Posted<CsrfForm>) -> Response {
    change(app, p.session, id, true).await
}

async fn resolve(
    State(app): State<Shared>,
    Path(id): Path<String>,
    p: Posted<CsrfForm>,
) -> Response {
    change(app, p.session, id, false).await
}

/// The on-call page (with `error` from a refused form, status 400).
async fn oncall_page(
    app: &Shared,
    s: &Session,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let now = unix_now();
    let data = with_pager(app, move |p| {
        let cfg = p.config();
        let mut out = Vec::new();
        for (name, sch) in &cfg.schedules {
            out.push(ScheduleView {
                name: name.clone(),
                time_zone: sch.tz.iana_name().unwrap_or("UTC").to_string(),
                shifts: p.shifts(name, None, now, now + SHIFT_DAYS * 86_400)?,
                overrides: p.overrides(Some(name), now)?,
            });
        }
        Ok::<_, crate::alert::pager::PagerError>(out)
    })
    .await;
    let contacts: Vec<String> = app.pager.config().contacts.keys().cloned().collect();
    match data {
        Err(r) => r.into_response(),
        Ok(Err(e)) => failed(crate::error_chain(&e)),
        Ok(Ok(v)) => {
            let me = Me {
                name: &s.name,
                csrf: &s.csrf,
            };
            let status = if error.is_some() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            html(
                status,
                pages::oncall_page(&v, &contacts, &me, notice, error, now),
            )
        }
    }
}

async fn oncall(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Response {
    match signed_in(&app, &headers).await {
        Ok(s) => oncall_page(&app, &s, notice(&q), None).await,
        Err(r) => r,
    }
}

#[derive(Deserialize, Default)]
struct OverrideForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    schedule: String,
    #[serde(default)]
    contact: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

impl WithCsrf for OverrideForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn add_override(State(app): State<Shared>, p: Posted<OverrideForm>) -> Response {
    let (f, s) = (p.form, p.session);
    let cfg = app.pager.config();
    let Some(sch) = cfg.schedules.get(&f.schedule) else {
        return oncall_page(&app, &s, None, Some("schedule: no such schedule")).await;
    };
    let parse = |field: &str, v: &str| {
        crate::oncall::config::parse_time(v, &sch.tz).map_err(|e| format!("{field}: {e}"))
    };
    let (from, to) = match (parse("from", &f.from), parse("to", &f.to)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return oncall_page(&app, &s, None, Some(&e)).await,
    };
    let (schedule, contact) = (f.schedule.clone(), f.contact.clone());
    let r = with_pager(&app, move |p| {
        p.add_override(&schedule, &contact, from, to, unix_now())
    })
    .await;
    match r {
        Err(r) => r.into_response(),
        Ok(Err(e)) if e.is_input() => oncall_page(&app, &s, None, Some(&e.to_string())).await,
        Ok(Err(e)) => failed(crate::error_chain(&e)),
        Ok(Ok(c)) => {
            log::info!(
                "override {} added by {} on the status page: {} covers {}",
                c.override_.id,
                s.name,
                f.contact,
                f.schedule
            );
            see_other("/ui/oncall?m=added")
        }
    }
}

async fn remove_override(
    State(app): State<Shared>,
    Path(id): Path<String>,
    p: Posted<CsrfForm>,
) -> Response {
    let s = p.session;
    let Ok(id) = id.parse::<i64>() else {
        return oncall_page(&app, &s, None, Some("no such override")).await;
    };
    match with_pager(&app, move |p| p.remove_override(id, unix_now())).await {
        Err(r) => r.into_response(),
        Ok(Err(e)) => failed(crate::error_chain(&e)),
        Ok(Ok(None)) => oncall_page(&app, &s, None, Some("no such override")).await,
        Ok(Ok(Some(_))) => {
            log::info!("override {id} removed by {} on the status page", s.name);
            see_other("/ui/oncall?m=removed")
        }
    }
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        ICON,
    )
        .into_response()
}

async fn js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn only_this_site_may_post() {
        assert!(same_origin(&h(&[])), "no headers: the CSRF token decides");
        assert!(same_origin(&h(&[
            ("host", "pbx:9095"),
            ("origin", "http://pbx:9095")
        ])));
        assert!(same_origin(&h(&[
            ("host", "pbx"),
            ("origin", "https://pbx"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "pbx:9095"),
            ("origin", "http://evil:9095")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "pbx:9095"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&h(&[("origin", "http://pbx")])), "no host");
        // a browser's own form under no-referrer: Origin null, but
        // Sec-Fetch-Site says same-origin
        assert!(same_origin(&h(&[
            ("host", "pbx"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "pbx"),
            ("origin", "http://pbx"),
            ("sec-fetch-site", "cross-site")
        ])));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let m = h(&[("cookie", "a=1; autodial_session=abc; b=2")]);
        assert_eq!(cookie(&m), Some("abc"));
        assert_eq!(cookie(&h(&[("cookie", "autodial_sessionx=1")])), None);
        assert_eq!(cookie(&h(&[])), None);
    }
}
