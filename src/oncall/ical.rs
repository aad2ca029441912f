//! iCalendar (RFC 5545) feeds of shifts, for the calendars people already
//! use: one `VEVENT` per shift, UTC times (no `VTIMEZONE` needed), a `UID`
//! that stays the same across refreshes, CRLF line ends, lines folded at
//! 75 octets, text escaped.

use std::fmt::Write;

use super::view::Shift;

/// Days a feed covers ahead.
pub const FEED_DAYS: i64 = 60;

/// `20261130T070000Z`.
fn utc(t: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(t, 0)
        .map(|d| d.format("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_else(|| "19700101T000000Z".into())
}

/// A TEXT value: `\`, `;`, `,` and line breaks escaped.
fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded so no line is longer than 75 octets
/// (a fold never splits a UTF-8 character), ended by CRLF.
fn line(out: &mut String, l: &str) {
    let mut width = 0;
    for c in l.chars() {
        let n = c.len_utf8();
        // a continuation line starts with a space: 74 octets of content
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

/// The stable id of a shift: its schedule, people and start. A shift that
/// began before the feed's range (`since`) has no start the feed knows,
/// so its end names it (and one that spans the whole range, `ongoing`).
pub fn uid(s: &Shift, who: &str, since: i64, until: i64) -> String {
    let when = match (s.from <= since, s.to >= until) {
        (false, _) => utc(s.from),
        (true, false) => format!("until-{}", utc(s.to)),
        (true, true) => "ongoing".to_string(),
    };
    format!("{}-{}-{when}@autodial", s.schedule, who)
}

/// The feed named `name` (`On call: dba`) of `shifts` over `[since,
/// until)` (those with nobody are left out), stamped `now`. With
/// `contact`, each event is that person's (the feed of one person across
/// schedules).
pub fn calendar(
    name: &str,
    shifts: &[Shift],
    (since, until): (i64, i64),
    contact: Option<&str>,
    now: i64,
) -> String {
    let mut out = String::new();
    for l in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//autodial//on-call schedules//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ] {
        line(&mut out, l);
    }
    line(&mut out, &format!("X-WR-CALNAME:{}", text(name)));
    let stamp = utc(now);
    for s in shifts.iter().filter(|s| !s.contacts.is_empty()) {
        let who = match contact {
            Some(c) => c.to_string(),
            None => s.contacts.join("+"),
        };
        line(&mut out, "BEGIN:VEVENT");
        line(&mut out, &format!("UID:{}", uid(s, &who, since, until)));
        line(&mut out, &format!("DTSTAMP:{stamp}"));
        line(&mut out, &format!("DTSTART:{}", utc(s.from)));
        line(&mut out, &format!("DTEND:{}", utc(s.to)));
        let mut summary = String::new();
        let _ = write!(
            summary,
            "On call: {} ({})",
            s.contacts.join(", "),
            s.schedule
        );
        line(&mut out, &format!("SUMMARY:{}", text(&summary)));
        line(
            &mut out,
            &format!("DESCRIPTION:{}", text(&format!("why: {}", s.why.text()))),
        );
        line(&mut out, "TRANSP:TRANSPARENT");
        line(&mut out, "END:VEVENT");
    }
    line(&mut out, "END:VCALENDAR");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::view::Why;

    fn shift(from: i64, contacts: &[&str]) -> Shift {
        Shift {
            schedule: "dba".into(),
            from,
            to: from + 3600,
            contacts: contacts.iter().map(|s| s.to_string()).collect(),
            why: Why {
                why: "layer",
                layer: Some("weekly".into()),
                override_id: None,
            },
        }
    }

    #[test]
    fn lines_are_crlf_folded_at_75_octets_and_text_is_escaped() {
        let long = "é".repeat(60);
        let cal = calendar(
            &format!("On call, dba; {long}"),
            &[shift(1_796_000_000, &["ivan"]), shift(1_796_003_600, &[])],
            (1_795_000_000, 1_797_000_000),
            None,
            1_795_000_000,
        );
        assert!(cal.ends_with("END:VCALENDAR\r\n"));
        assert!(!cal.replace("\r\n", "").contains('\n'));
        for l in cal.split("\r\n") {
            assert!(l.len() <= 75, "{l:?} is {} octets", l.len());
        }
        assert!(cal.contains("X-WR-CALNAME:On call\\, dba\\; é"));
        let unfolded = cal.replace("\r\n ", "");
        assert!(unfolded.contains(&format!("X-WR-CALNAME:On call\\, dba\\; {long}\r\n")));
        // the shift with nobody is no event
        assert_eq!(cal.matches("BEGIN:VEVENT").count(), 1);
        assert!(cal.contains("DTSTART:20261130T005320Z"));
        assert!(cal.contains("UID:dba-ivan-20261130T005320Z@autodial"));
    }

    #[test]
    fn a_shift_cut_by_the_range_is_named_by_what_the_feed_knows() {
        let s = shift(1_796_000_000, &["ivan"]);
        let (from, to) = (s.from, s.to);
        assert_eq!(
            uid(&s, "ivan", from - 1, to + 1),
            "dba-ivan-20261130T005320Z@autodial"
        );
        // began before the range: named by its end, whatever the range start
        assert_eq!(
            uid(&s, "ivan", from, to + 1),
            uid(&s, "ivan", from + 60, to + 1)
        );
        assert_eq!(
            uid(&s, "ivan", from + 60, to + 1),
            "dba-ivan-until-20261130T015320Z@autodial"
        );
        assert_eq!(uid(&s, "ivan", from + 60, to), "dba-ivan-ongoing@autodial");
    }
}
