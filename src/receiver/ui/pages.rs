//! The status page's HTML: maud templates, checked at compile time and
//! escaping every value (an alert's text, labels and names come from
//! outside). Pure: the data and the instant in, markup out. Times are
//! written in UTC with the offset and a relative age; the small script
//! turns them into the viewer's zone and keeps the ages current.

use maud::{html, Markup, DOCTYPE};

use crate::alert::pager::HeartbeatView;
use crate::alert::store::{AlertView, CallRow};
use crate::alert::{AlertState, Outcome};
use crate::oncall::view::{OverrideView, Shift};

/// Who is signed in, and the token their forms carry.
pub struct Me<'a> {
    pub name: &'a str,
    pub csrf: &'a str,
}

/// One schedule's line on the status page.
pub struct OnCallLine {
    pub schedule: String,
    pub now: Vec<String>,
    pub until: Option<i64>,
    pub next: Option<(Vec<String>, i64)>,
}

/// One schedule on the on-call page.
pub struct ScheduleView {
    pub name: String,
    pub time_zone: String,
    pub shifts: Vec<Shift>,
    pub overrides: Vec<OverrideView>,
}

/// "4 min ago", "in 2 h 5 min": `t` against `now`.
pub fn ago(t: i64, now: i64) -> String {
    let d = (now - t).abs();
    let span = if d < 60 {
        format!("{d} s")
    } else if d < 3600 {
        format!("{} min", d / 60)
    } else if d < 86_400 {
        match (d / 3600, d % 3600 / 60) {
            (h, 0) => format!("{h} h"),
            (h, m) => format!("{h} h {m} min"),
        }
    } else {
        format!("{} d", d / 86_400)
    };
    if t <= now {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A time: UTC with its offset (what a browser without script shows),
/// and its age.
fn when(t: i64, now: i64) -> Markup {
    let iso = crate::timefmt::rfc3339(t).unwrap_or_default();
    let shown = chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S +00:00").to_string())
        .unwrap_or_default();
    html! {
        time datetime=(iso) data-t=(t) { (shown) }
        " "
        span.ago data-t=(t) { "(" (ago(t, now)) ")" }
    }
}

/// The last call placed (or ringing) by `now`.
pub fn last_call(calls: &[CallRow], now: i64) -> Option<&CallRow> {
    calls
        .iter()
        .filter(|c| match c.outcome {
            Outcome::Cancelled | Outcome::Replanned | Outcome::NobodyOnCall => false,
            Outcome::Scheduled => c.at <= now,
            _ => true,
        })
        .max_by_key(|c| (c.at, c.id))
}

/// The next call planned after `now`.
pub fn next_call(calls: &[CallRow], now: i64) -> Option<&CallRow> {
    calls
        .iter()
        .filter(|c| c.outcome == Outcome::Scheduled && c.at > now)
        .min_by_key(|c| (c.at, c.id))
}

fn outcome_word(c: &CallRow, now: i64) -> &'static str {
    match c.outcome {
        Outcome::Scheduled if c.at <= now => "ringing",
        o => o.as_str(),
    }
}

fn csrf_field(me: &Me) -> Markup {
    html! { input type="hidden" name="csrf" value=(me.csrf); }
}

/// The page around `body`: header with navigation and sign-out, the
/// refreshed `main`, the "updated" line, the script.
pub fn layout(title: &str, me: Option<&Me>, now: i64, refresh: bool, body: Markup) -> Markup {
    layout_with(title, me, now, refresh, body, html! {})
}

/// [`layout`] with `after` below the refreshed part (forms: a refresh
/// never eats what is being typed).
fn layout_with(
    title: &str,
    me: Option<&Me>,
    now: i64,
    refresh: bool,
    body: Markup,
    after: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · autodial" }
                link rel="stylesheet" href="/ui/static/app.css";
                link rel="icon" href="/ui/static/icon.svg" type="image/svg+xml";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header {
                    nav aria-label="Main" {
                        a href="/" { "Status" }
                        a href="/ui/oncall" { "On call" }
                        @if let Some(me) = me {
                            span.me { "Signed in as " strong { (me.name) } }
                            form.inline method="post" action="/ui/logout" {
                                (csrf_field(me))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #live data-refresh=[refresh.then_some("10")] {
                    h1 { (title) }
                    (body)
                }
                (after)
                footer {
                    p {
                        "Updated " time #updated datetime=(crate::timefmt::rfc3339(now).unwrap_or_default()) data-t=(now) {
                            (chrono::DateTime::<chrono::Utc>::from_timestamp(now, 0)
                                .map(|d| d.format("%H:%M:%S +00:00").to_string())
                                .unwrap_or_default())
                        }
                        @if refresh {
                            span #refresh-note { ". Refreshes every 10 s" }
                            noscript { " (with scripting off: reload to refresh)" }
                        }
                        "."
                    }
                }
            }
        }
    }
}

/// The sign-in form; `failed`: the last try failed.
pub fn login(contacts: &[String], failed: bool, now: i64) -> Markup {
    let body = html! {
        @if failed {
            p.error role="alert" { "Sign-in failed: wrong token or name." }
        }
        form.card method="post" action="/ui/login" {
            p {
                label for="token" { "Token (the service's bearer token)" }
                input #token type="password" name="token" autocomplete="current-password" required;
            }
            p {
                label for="name" { "Who you are" }
                select #name name="name" required {
                    @for c in contacts {
                        option value=(c) { (c) }
                    }
                }
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    layout("Sign in", None, now, false, body)
}

fn state_badge(s: AlertState) -> Markup {
    html! { span class=(format!("badge {}", s.as_str())) { (s.as_str()) } }
}

fn labels(a: &AlertView) -> Markup {
    html! {
        @if a.labels.is_empty() {
            "-"
        } @else {
            ul.labels {
                @for (k, v) in &a.labels {
                    li { code { (k) "=" (v) } }
                }
            }
        }
    }
}

fn call_text(c: &CallRow, now: i64) -> Markup {
    html! {
        (c.contact) " " span.outcome { (outcome_word(c, now)) } " " (when(c.at, now))
    }
}

fn alert_rows(alerts: &[&AlertView], me: &Me, now: i64) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead {
                    tr {
                        th scope="col" { "State" }
                        th scope="col" { "Alert" }
                        th scope="col" { "Raised" }
                        th scope="col" { "Chain" }
                        th scope="col" { "Labels" }
                        th scope="col" { "Last call" }
                        th scope="col" { "Next call" }
                        th scope="col" { "Action" }
                    }
                }
                tbody {
                    @for a in alerts {
                        @let calls = a.calls.as_deref().unwrap_or_default();
                        tr {
                            td data-label="State" {
                                (state_badge(a.state))
                                @if let Some(by) = &a.acked_by {
                                    " by " strong { (by) }
                                    @if let Some(via) = a.acked_via { " via " (via.as_str()) }
                                }
                            }
                            td data-label="Alert" {
                                a href=(format!("/ui/alerts/{}", a.id)) { (a.id) }
                                p.text { (a.text) }
                            }
                            td data-label="Raised" { (when(a.raised_at, now)) }
                            td data-label="Chain" { (a.chain) }
                            td data-label="Labels" { (labels(a)) }
                            td data-label="Last call" {
                                @match last_call(calls, now) {
                                    Some(c) => (call_text(c, now)),
                                    None => "-",
                                }
                            }
                            td data-label="Next call" {
                                @match next_call(calls, now) {
                                    Some(c) => { (c.contact) " " (when(c.at, now)) },
                                    None => "-",
                                }
                            }
                            td data-label="Action" {
                                @if matches!(a.state, AlertState::Firing | AlertState::Unacknowledged) {
                                    form.inline method="post" action=(format!("/ui/alerts/{}/ack", a.id)) {
                                        (csrf_field(me))
                                        button type="submit" aria-label=(format!("Acknowledge {}", a.id)) { "Acknowledge" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `/`: what is firing, acked, recently ended; heartbeats in trouble; who
/// is on call.
pub fn dashboard(
    alerts: &[AlertView],
    heartbeats: &[HeartbeatView],
    oncall: &[OnCallLine],
    me: &Me,
    notice: Option<&str>,
    now: i64,
) -> Markup {
    let firing: Vec<&AlertView> = alerts
        .iter()
        .filter(|a| a.state == AlertState::Firing)
        .collect();
    let acked: Vec<&AlertView> = alerts
        .iter()
        .filter(|a| a.state == AlertState::Acked)
        .collect();
    let ended: Vec<&AlertView> = alerts
        .iter()
        .filter(|a| matches!(a.state, AlertState::Resolved | AlertState::Unacknowledged))
        .collect();
    let troubled: Vec<&HeartbeatView> = heartbeats
        .iter()
        .filter(|h| {
            matches!(
                h.state,
                crate::heartbeat::HbState::Expired | crate::heartbeat::HbState::NeverPinged
            )
        })
        .collect();
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        section aria-labelledby="h-firing" {
            h2 #h-firing { "Firing (" (firing.len()) ")" }
            @if firing.is_empty() { p { "Nothing is firing." } } @else { (alert_rows(&firing, me, now)) }
        }
        section aria-labelledby="h-acked" {
            h2 #h-acked { "Acknowledged (" (acked.len()) ")" }
            @if acked.is_empty() { p { "None." } } @else { (alert_rows(&acked, me, now)) }
        }
        section aria-labelledby="h-ended" {
            h2 #h-ended { "Recently ended" }
            @if ended.is_empty() { p { "None." } } @else { (alert_rows(&ended, me, now)) }
        }
        section aria-labelledby="h-hb" {
            h2 #h-hb { "Heartbeats" }
            @if troubled.is_empty() {
                p { @if heartbeats.is_empty() { "No heartbeats configured." } @else { "Every heartbeat is pinging (or paused)." } }
            } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "Heartbeat" } th scope="col" { "State" } th scope="col" { "Last ping" } } }
                    tbody {
                        @for h in &troubled {
                            tr {
                                td data-label="Heartbeat" { (h.name) }
                                td data-label="State" { span class=(format!("badge {}", h.state.as_str())) { (h.state.as_str()) } }
                                td data-label="Last ping" {
                                    @match h.last_ping { Some(t) => (when(t, now)), None => "never" }
                                }
                            }
                        }
                    }
                } }
            }
        }
        section aria-labelledby="h-oncall" {
            h2 #h-oncall { "On call" }
            @if oncall.is_empty() { p { "No schedules configured." } } @else {
                div.table-wrap { table {
                    thead { tr {
                        th scope="col" { "Schedule" } th scope="col" { "Now" } th scope="col" { "Next" }
                    } }
                    tbody {
                        @for l in oncall {
                            tr {
                                td data-label="Schedule" { (l.schedule) }
                                td data-label="Now" {
                                    @if l.now.is_empty() { span.badge.nobody { "nobody" } } @else { (l.now.join(", ")) }
                                    @if let Some(u) = l.until { " until " (when(u, now)) }
                                }
                                td data-label="Next" {
                                    @match &l.next {
                                        Some((who, from)) => {
                                            @if who.is_empty() { "nobody" } @else { (who.join(", ")) }
                                            " from " (when(*from, now))
                                        },
                                        None => "-",
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    layout("Status", Some(me), now, true, body)
}

/// `/ui/alerts/{id}`: every episode's timeline, the latest first, with
/// Acknowledge and Resolve for an open one.
pub fn alert_page(episodes: &[AlertView], me: &Me, notice: Option<&str>, now: i64) -> Markup {
    let Some(cur) = episodes.first() else {
        return layout(
            "No such alert",
            Some(me),
            now,
            false,
            html! { p { "No such alert." } },
        );
    };
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        p.text-big { (cur.text) }
        p { (state_badge(cur.state)) " chain " (cur.chain) }
        div.actions {
            @if matches!(cur.state, AlertState::Firing | AlertState::Unacknowledged) {
                form.inline method="post" action=(format!("/ui/alerts/{}/ack", cur.id)) {
                    (csrf_field(me))
                    button type="submit" { "Acknowledge" }
                }
            }
            @if cur.state != AlertState::Resolved {
                form.inline method="post" action=(format!("/ui/alerts/{}/resolve", cur.id)) {
                    (csrf_field(me))
                    button.secondary type="submit" { "Resolve" }
                }
            }
        }
        @for e in episodes {
            section aria-label=(format!("Episode {}", e.episode)) {
                h2 { "Episode " (e.episode) " " (state_badge(e.state)) }
                p { "Labels: " (labels(e)) }
                @if let Some(err) = &e.speech_error { p.error { "Speech: " (err) } }
                ol.timeline {
                    li { (when(e.raised_at, now)) " raised: " (e.text) }
                    @for c in e.calls.as_deref().unwrap_or_default() {
                        li class=(format!("call {}", c.outcome.as_str())) {
                            (when(c.at, now)) " call to " strong { (c.contact) } " (" (c.number) "), step " (c.step + 1) ", round " (c.round + 1) ": "
                            span.outcome { (outcome_word(c, now)) }
                            @if let Some(s) = &c.schedule {
                                " (schedule " (s) @if let Some(w) = &c.why { ": " (w) } ")"
                            }
                        }
                    }
                    @if let (Some(by), Some(t)) = (&e.acked_by, e.acked_at) {
                        li { (when(t, now)) " acknowledged by " strong { (by) }
                            @if let Some(via) = e.acked_via { " via " (via.as_str()) } }
                    }
                    @if let Some(t) = e.resolved_at {
                        li { (when(t, now)) " resolved" }
                    }
                }
            }
        }
    };
    layout(&format!("Alert {}", cur.id), Some(me), now, true, body)
}

/// `/ui/oncall`: each schedule's shifts for the next 14 days, overrides
/// marked and removable; the form to add one; the feeds.
pub fn oncall_page(
    schedules: &[ScheduleView],
    contacts: &[String],
    me: &Me,
    notice: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> Markup {
    let body = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @for s in schedules {
            section aria-labelledby=(format!("s-{}", s.name)) {
                h2 id=(format!("s-{}", s.name)) { (s.name) }
                p.small { "Time zone " (s.time_zone) ". Calendar feed: "
                    a href=(format!("/oncall/{}.ics", s.name)) { (s.name) ".ics" }
                    " (calendar apps add " code { "?token=" } " and the token)." }
                div.table-wrap { table {
                    caption { "Shifts, the next 14 days" }
                    thead { tr { th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Who" } th scope="col" { "Why" } } }
                    tbody {
                        @for sh in &s.shifts {
                            tr class=[(sh.why.override_id.is_some()).then_some("override")] {
                                td data-label="From" { (when(sh.from, now)) }
                                td data-label="To" { (when(sh.to, now)) }
                                td data-label="Who" { @if sh.contacts.is_empty() { span.badge.nobody { "nobody" } } @else { (sh.contacts.join(", ")) } }
                                td data-label="Why" {
                                    @if let Some(id) = sh.why.override_id { span.badge.override { "override " (id) } } @else { (sh.why.text()) }
                                }
                            }
                        }
                    }
                } }
                @if !s.overrides.is_empty() {
                    h3 { "Overrides" }
                    ul.overrides {
                        @for o in &s.overrides {
                            li {
                                "Override " (o.id) ": " strong { (o.contact) } " from " (when(o.from, now)) " to " (when(o.to, now)) " "
                                form.inline method="post" action=(format!("/ui/oncall/overrides/{}/remove", o.id)) {
                                    (csrf_field(me))
                                    button.secondary type="submit" aria-label=(format!("Remove override {}", o.id)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let form = html! {
        section aria-labelledby="h-add" {
            h2 #h-add { "Cover a shift" }
            form.card method="post" action="/ui/oncall/overrides" {
                (csrf_field(me))
                p {
                    label for="o-contact" { "Who covers" }
                    select #o-contact name="contact" required {
                        @for c in contacts { option value=(c) selected[c == me.name] { (c) } }
                    }
                }
                p {
                    label for="o-schedule" { "Schedule" }
                    select #o-schedule name="schedule" required {
                        @for s in schedules { option value=(s.name) { (s.name) " (" (s.time_zone) ")" } }
                    }
                }
                p {
                    label for="o-from" { "From (in the schedule's time zone)" }
                    input #o-from type="datetime-local" name="from" required;
                }
                p {
                    label for="o-to" { "To (in the schedule's time zone)" }
                    input #o-to type="datetime-local" name="to" required;
                }
                p { button type="submit" { "Add override" } }
            }
        }
    };
    layout_with("On call", Some(me), now, true, body, form)
}

/// A page for a refused or failed request.
pub fn message(title: &str, text: &str, me: Option<&Me>, now: i64) -> Markup {
    layout(
        title,
        me,
        now,
        false,
        html! { p { (text) } p { a href="/" { "Back to the status page" } } },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(text: &str) -> AlertView {
        AlertView {
            id: "x".into(),
            episode: 1,
            state: AlertState::Firing,
            text: text.into(),
            chain: "c<hain>".into(),
            labels: [("k\"".to_string(), "<v>".to_string())].into(),
            labels_cut: 0,
            raised_at: 1000,
            acked_by: None,
            acked_at: None,
            acked_via: None,
            resolved_at: None,
            sounds: Default::default(),
            speech_error: None,
            calls: Some(vec![]),
        }
    }

    #[test]
    fn outside_text_is_escaped_everywhere() {
        let me = Me {
            name: "olga",
            csrf: "c",
        };
        let evil = "<img src=x onerror=alert(1)></script><script>alert(2)</script>&";
        let html = dashboard(&[view(evil)], &[], &[], &me, None, 2000).into_string();
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;"));
        assert!(html.contains("c&lt;hain&gt;"));
        assert!(html.contains("k&quot;=&lt;v&gt;"));
        // the only script is the page's own file
        assert_eq!(html.matches("<script").count(), 1);
        let page = alert_page(&[view(evil)], &me, None, 2000).into_string();
        assert!(!page.contains("<img"));
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(ago(1000, 1000), "0 s ago");
        assert_eq!(ago(1000, 1240), "4 min ago");
        assert_eq!(ago(1000, 1000 + 2 * 3600 + 300), "2 h 5 min ago");
        assert_eq!(ago(1000, 1000 + 3600), "1 h ago");
        assert_eq!(ago(1000 + 120, 1000), "in 2 min");
        assert_eq!(ago(0, 3 * 86_400), "3 d ago");
    }

    #[test]
    fn last_and_next_calls() {
        let c = |id: i64, at, outcome| CallRow::sample(id, &format!("c{id}"), at, outcome);
        let calls = [
            c(1, 100, Outcome::NoAnswer),
            c(2, 200, Outcome::Scheduled),
            c(3, 300, Outcome::Scheduled),
            c(4, 150, Outcome::Replanned),
        ];
        assert_eq!(last_call(&calls, 250).unwrap().id, 2, "ringing");
        assert_eq!(last_call(&calls, 150).unwrap().id, 1);
        assert_eq!(next_call(&calls, 150).unwrap().id, 2);
        assert_eq!(next_call(&calls, 250).unwrap().id, 3);
        assert!(next_call(&calls, 300).is_none());
    }
}
