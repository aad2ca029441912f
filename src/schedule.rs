//! When a call should happen: `--at` times in the forms admins already use,
//! `--in` durations, and local times that fall into a DST change.

use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, TimeZone};

/// A resolved time, and a note when resolving needed a choice (DST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub at: DateTime<FixedOffset>,
    pub note: Option<String>,
}

/// Reads a local wall-clock time in `tz`, resolving a DST gap by moving
/// forward by the gap's length (02:30 in a spring-forward gap becomes
/// 03:30) and a DST overlap by taking the earlier instant; either is said
/// in the note.
pub fn resolve_local<Tz: TimeZone>(tz: &Tz, naive: NaiveDateTime) -> Result<Resolved, String> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(Resolved {
            at: t.fixed_offset(),
            note: None,
        }),
        LocalResult::Ambiguous(a, b) => {
            let (a, b) = (a.fixed_offset(), b.fixed_offset());
            let (early, late) = if a <= b { (a, b) } else { (b, a) };
            Ok(Resolved {
                at: early,
                note: Some(format!(
                    "{naive} happens twice (DST ends); using the first, {early} (not {late})"
                )),
            })
        }
        LocalResult::None => {
            // The offset in force before the gap, applied to the wall time,
            // lands just after the gap by the gap's length.
            let before = (1..=48)
                .find_map(|h| {
                    tz.from_local_datetime(&(naive - chrono::Duration::hours(h)))
                        .earliest()
                })
                .ok_or_else(|| format!("{naive} does not exist in the local time zone"))?;
            let offset = *before.fixed_offset().offset();
            let at = offset
                .from_local_datetime(&naive)
                .single()
                .ok_or_else(|| format!("{naive} does not exist in the local time zone"))?;
            let shown = at.with_timezone(tz).fixed_offset();
            Ok(Resolved {
                at: shown,
                note: Some(format!(
                    "{naive} does not exist (DST starts); using {shown}"
                )),
            })
        }
    }
}

fn digits(s: &str, from: usize, len: usize) -> Option<u32> {
    s.get(from..from + len)?.parse().ok()
}

/// `touch -t` form: `[[CC]YY]MMDDhhmm[.ss]`. Two-digit years 69..99 are
/// 19YY, 00..68 are 20YY (POSIX); no year means the current one.
fn touch_t(s: &str, this_year: i32) -> Option<NaiveDateTime> {
    let (main, sec) = match s.split_once('.') {
        Some((m, ss)) if ss.len() == 2 => (m, ss.parse::<u32>().ok()?),
        Some(_) => return None,
        None => (s, 0),
    };
    if !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match main.len() {
        8 => (this_year, main),
        10 => {
            let yy = digits(main, 0, 2)? as i32;
            (if yy >= 69 { 1900 + yy } else { 2000 + yy }, &main[2..])
        }
        12 => (digits(main, 0, 4)? as i32, &main[4..]),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(year, digits(rest, 0, 2)?, digits(rest, 2, 2)?)?.and_hms_opt(
        digits(rest, 4, 2)?,
        digits(rest, 6, 2)?,
        sec,
    )
}

/// Reads `--at`: RFC 3339 with offset (`2010-07-09T19:18:55+04:00`),
/// `YYYY-MM-DD HH:MM[:SS]` in local time, or `touch -t` form
/// `[[CC]YY]MMDDhhmm[.ss]` in local time.
pub fn parse_at<Tz: TimeZone>(s: &str, tz: &Tz, now: DateTime<Tz>) -> Result<Resolved, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Resolved { at: t, note: None });
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return resolve_local(tz, n);
        }
    }
    if let Some(n) = touch_t(s, now.year()) {
        return resolve_local(tz, n);
    }
    Err(format!(
        "--at {s:?}: not a time; use RFC 3339 (2010-07-09T19:18:55+04:00), \
         'YYYY-MM-DD HH:MM[:SS]' local time, or touch -t form [[CC]YY]MMDDhhmm[.ss]"
    ))
}

/// How far ahead a call may be scheduled, by `--in` or `--at`: ten years
/// (3660 days). Beyond that is a typo, and a time some filesystems cannot
/// store as an mtime (ext4 stops in 2446) or chrono cannot show.
pub const MAX_AHEAD: Duration = Duration::from_secs(3660 * 86400);

/// Checks a resolved time against `now`: at most [`MAX_AHEAD`] ahead, and
/// not before 1970 (an mtime before the epoch is no schedule).
pub fn check_range<Tz: TimeZone>(
    at: &DateTime<FixedOffset>,
    now: &DateTime<Tz>,
) -> Result<(), String> {
    let ahead = at
        .timestamp()
        .checked_sub(now.timestamp())
        .unwrap_or(i64::MAX);
    if ahead > MAX_AHEAD.as_secs() as i64 {
        return Err(format!(
            "{at} is more than {} days ahead; refused as a likely typo (a call file's mtime is its schedule)",
            MAX_AHEAD.as_secs() / 86400
        ));
    }
    if at.timestamp() < 0 {
        return Err(format!(
            "{at} is before 1970; a call file's mtime cannot mean it"
        ));
    }
    Ok(())
}

/// Reads `--in`: `90s`, `10m`, `2h`, `1d`, `1h30m`, or plain seconds (`45`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("--in {s:?}: not a duration; use e.g. 90s, 10m, 2h, 1h30m");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    let too_far = || {
        format!(
            "--in {s:?}: more than {} days ahead; refused as a likely typo",
            MAX_AHEAD.as_secs() / 86400
        )
    };
    if s.bytes().all(|b| b.is_ascii_digit()) {
        // Plain seconds: the same bound as every other form.
        return match s.parse::<u64>() {
            Ok(secs) if secs <= MAX_AHEAD.as_secs() => Ok(Duration::from_secs(secs)),
            _ => Err(too_far()),
        };
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut last_unit = u64::MAX;
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            'd' => 86400,
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        // Units must come largest first, each once: "1h30m", not "30m1h".
        if num.is_empty() || unit >= last_unit {
            return Err(bad());
        }
        last_unit = unit;
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(too_far)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    if total > MAX_AHEAD.as_secs() {
        return Err(too_far());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        for bad in [
            "",
            "m",
            "1x",
            "30m1h",
            "1h1h",
            "5s3",
            "-5s",
            "99999999999999999999d",
            "9999999999999",
            "9223372036854775808",
            "18446744073709000000",
            "18446744073709551616",
            "3661d",
            "316224001",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // the same bound for every form
        assert_eq!(parse_duration("3660d"), Ok(MAX_AHEAD));
        assert_eq!(parse_duration("316224000"), Ok(MAX_AHEAD));
        assert_eq!(parse_duration("87840h"), Ok(MAX_AHEAD));
        assert!(parse_duration("87841h").is_err());
    }

    #[test]
    fn at_forms_agree() {
        let tz = FixedOffset::east_opt(4 * 3600).unwrap();
        let now = Utc::now().with_timezone(&tz);
        let want = DateTime::parse_from_rfc3339("2010-07-09T19:18:55+04:00").unwrap();
        for s in [
            "2010-07-09T19:18:55+04:00",
            "2010-07-09 19:18:55",
            "201007091918.55",
            "1007091918.55",
        ] {
            assert_eq!(parse_at(s, &tz, now).unwrap().at, want, "{s}");
        }
        let no_secs = parse_at("2010-07-09 19:18", &tz, now).unwrap().at;
        assert_eq!(no_secs, want - chrono::Duration::seconds(55));
        let this_year = parse_at("07091918", &tz, now).unwrap().at;
        assert_eq!(this_year.year(), now.year());
        for bad in [
            "tomorrow",
            "2010-13-01 00:00",
            "0709191",
            "07091918.5",
            "2010-07-09",
        ] {
            assert!(parse_at(bad, &tz, now).is_err(), "{bad}");
        }
    }
}
