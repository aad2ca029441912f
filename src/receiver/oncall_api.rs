//! `/oncall`: who is on call, shifts, overrides and the iCalendar feeds,
//! over HTTP: the same [`crate::alert::pager::Pager`] calls as
//! `autodial oncall`, the same auth, limits and error shape as the rest
//! of the receiver.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::server::{pager_call, parse, read_body, Reply, Shared};
use crate::alert::pager::unix_now;
use crate::oncall::config::parse_time;

/// Days of shifts when `to` is not given.
const DEFAULT_DAYS: i64 = 14;

fn no_schedule(name: &str) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        format!(
            "no schedule {:?}",
            crate::escape_bytes(&name.as_bytes()[..name.len().min(64)])
        ),
        Some("schedule".into()),
    )
}

/// A time of a query or body, read in `schedule`'s zone; a 400 naming
/// `field` otherwise.
fn time(app: &Shared, schedule: &str, field: &str, v: &str) -> Result<i64, Reply> {
    if v == "now" {
        return Ok(unix_now());
    }
    let cfg = app.pager.config();
    let Some(s) = cfg.schedules.get(schedule) else {
        return Err(no_schedule(schedule));
    };
    parse_time(v, &s.tz).map_err(|e| {
        Reply::error(
            StatusCode::BAD_REQUEST,
            format!("{field}: {e}"),
            Some(field.into()),
        )
    })
}

fn ok(body: Value, outcome: &'static str) -> Reply {
    Reply::new(StatusCode::OK, body, None, outcome)
}

/// `GET /oncall`: who is on call now for every schedule.
pub(super) async fn now(State(app): State<Shared>) -> Reply {
    match pager_call(&app, None, |p| p.on_call_now(None, unix_now())).await {
        Err(r) => r,
        Ok(v) => ok(json!({ "on_call": v }), "listed"),
    }
}

#[derive(Deserialize)]
pub(super) struct ShiftsQuery {
    from: Option<String>,
    to: Option<String>,
    contact: Option<String>,
}

/// `GET /oncall/{schedule}/shifts?from&to&contact`.
pub(super) async fn shifts(
    State(app): State<Shared>,
    Path(schedule): Path<String>,
    Query(q): Query<ShiftsQuery>,
) -> Reply {
    if !app.pager.config().schedules.contains_key(&schedule) {
        return no_schedule(&schedule);
    }
    let from = match q.from.as_deref().map(|v| time(&app, &schedule, "from", v)) {
        Some(Err(r)) => return r,
        Some(Ok(t)) => t,
        None => unix_now(),
    };
    let to = match q.to.as_deref().map(|v| time(&app, &schedule, "to", v)) {
        Some(Err(r)) => return r,
        Some(Ok(t)) => t,
        None => from + DEFAULT_DAYS * 86_400,
    };
    let r = pager_call(&app, None, move |p| {
        p.shifts(&schedule, q.contact.as_deref(), from, to)
    })
    .await;
    match r {
        Err(r) => r,
        Ok(v) => ok(json!({ "shifts": v }), "listed"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewOverride {
    contact: String,
    from: String,
    to: String,
}

/// `POST /oncall/{schedule}/overrides` `{"contact", "from", "to"}`: 201
/// with the override and the calls it re-planned.
pub(super) async fn add_override(
    State(app): State<Shared>,
    Path(schedule): Path<String>,
    body: Body,
) -> Reply {
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let o: NewOverride = match parse(&body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    if !app.pager.config().schedules.contains_key(&schedule) {
        return no_schedule(&schedule);
    }
    let (from, to) = match (
        time(&app, &schedule, "from", &o.from),
        time(&app, &schedule, "to", &o.to),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let r = pager_call(&app, None, move |p| {
        p.add_override(&schedule, &o.contact, from, to, unix_now())
    })
    .await;
    match r {
        Err(r) => r,
        Ok(c) => Reply::new(
            StatusCode::CREATED,
            serde_json::to_value(&c).unwrap_or(Value::Null),
            None,
            "created",
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct OverridesQuery {
    schedule: Option<String>,
    all: Option<String>,
}

/// `GET /oncall/overrides?schedule&all`: overrides not yet ended (with
/// `all`, every one kept).
pub(super) async fn list_overrides(
    State(app): State<Shared>,
    Query(q): Query<OverridesQuery>,
) -> Reply {
    let after = if matches!(q.all.as_deref(), Some("1" | "true" | "yes" | "")) {
        i64::MIN
    } else {
        unix_now()
    };
    match pager_call(&app, None, move |p| {
        p.overrides(q.schedule.as_deref(), after)
    })
    .await
    {
        Err(r) => r,
        Ok(v) => ok(json!({ "overrides": v }), "listed"),
    }
}

/// `DELETE /oncall/overrides/{id}`: 200 with what it re-planned, 404 for
/// an unknown id.
pub(super) async fn remove_override(State(app): State<Shared>, Path(id): Path<String>) -> Reply {
    let Ok(id) = id.parse::<i64>() else {
        return Reply::error(StatusCode::NOT_FOUND, "no such override", Some("id".into()));
    };
    match pager_call(&app, None, move |p| p.remove_override(id, unix_now())).await {
        Err(r) => r,
        Ok(None) => Reply::error(StatusCode::NOT_FOUND, "no such override", Some("id".into())),
        Ok(Some(c)) => ok(serde_json::to_value(&c).unwrap_or(Value::Null), "removed"),
    }
}

fn calendar(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    r
}

async fn feed(app: Shared, schedule: Option<String>, contact: Option<String>) -> Response {
    let r = pager_call(&app, None, move |p| {
        p.ical(schedule.as_deref(), contact.as_deref(), unix_now())
    })
    .await;
    match r {
        Err(r) => r.into_response(),
        Ok(c) => calendar(c),
    }
}

/// `GET /oncall/{schedule}.ics`.
pub(super) async fn schedule_feed(State(app): State<Shared>, Path(file): Path<String>) -> Response {
    match file.strip_suffix(".ics") {
        Some(name) if app.pager.config().schedules.contains_key(name) => {
            let name = name.to_string();
            feed(app, Some(name), None).await
        }
        Some(name) => no_schedule(name).into_response(),
        None => Reply::error(StatusCode::NOT_FOUND, "no such endpoint", None).into_response(),
    }
}

/// `GET /oncall/contacts/{name}.ics`.
pub(super) async fn contact_feed(State(app): State<Shared>, Path(file): Path<String>) -> Response {
    match file.strip_suffix(".ics") {
        Some(name) if app.pager.config().contacts.contains_key(name) => {
            let name = name.to_string();
            feed(app, None, Some(name)).await
        }
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "no such contact",
            Some("contact".into()),
        )
        .into_response(),
    }
}
