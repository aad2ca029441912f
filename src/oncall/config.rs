//! The `schedules` of `alerts.json`, and the times people type (`start`,
//! `from`, `to`, `--at`, `--from`, `--to`): without an offset a wall-clock
//! time in the schedule's zone, with an offset or `Z` an instant.

use std::collections::BTreeMap;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;

use super::{Layer, Schedule, ShiftLen, Window};

/// A schedule as written in `alerts.json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleCfg {
    /// An IANA name (`Europe/Moscow`), from the system's tz database.
    pub time_zone: String,
    #[serde(default)]
    pub layers: Vec<LayerCfg>,
    /// Called when no layer and no override has anyone.
    #[serde(default)]
    pub fallback: Vec<String>,
}

/// A rotation as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerCfg {
    pub name: String,
    pub contacts: Vec<String>,
    /// `Nh`, `Nd` or `Nw`.
    pub shift: String,
    /// The first handoff.
    pub start: String,
    #[serde(default)]
    pub only: Vec<WindowCfg>,
}

/// A daily window as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowCfg {
    /// `mon` .. `sun`; absent: every day.
    #[serde(default)]
    pub days: Option<Vec<String>>,
    pub from: String,
    pub to: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A name a schedule or a layer may have (a schedule's becomes part of
/// URLs and file names).
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 32
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// A time zone from the system's tz database. The zone's own file is read
/// (`$TZDIR`, else `/usr/share/zoneinfo`): a process-per-call program
/// pays for one small file, not for an index of the whole database; a
/// name that is no file there goes to jiff's lookup.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
    if plain {
        let dir = std::env::var_os("TZDIR")
            .filter(|d| !d.is_empty())
            .map_or_else(
                || std::path::PathBuf::from("/usr/share/zoneinfo"),
                Into::into,
            );
        if let Ok(data) = crate::fsio::read_bounded(&dir.join(name), 1 << 20) {
            if let Ok(tz) = TimeZone::tzif(name, &data) {
                return Ok(tz);
            }
        }
    }
    TimeZone::get(name).map_err(|_| {
        format!("{name:?} is not a time zone of the system's tz database (an IANA name such as Europe/Moscow)")
    })
}

/// Reads a time: `2026-11-30T10:00` (seconds optional) or `2026-11-30`
/// (its midnight) is wall-clock in `tz` (a time that does not exist is
/// later by the gap, one that exists twice is the first); with an offset
/// (`+03:00`) or `Z` it is that instant.
pub fn parse_time(s: &str, tz: &TimeZone) -> Result<i64, String> {
    let bad = || {
        format!(
            "{:?}: use YYYY-MM-DDTHH:MM (local to the schedule's zone), or with an offset or Z",
            crate::escape_bytes(s.as_bytes())
        )
    };
    if s.len() > 64 || s.contains('[') {
        return Err(bad());
    }
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t.as_second());
    }
    let dt = match s.parse::<DateTime>() {
        Ok(dt) => dt,
        Err(_) => s.parse::<Date>().map_err(|_| bad())?.to_datetime(Time::MIN),
    };
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .map(|t| t.as_second())
        .map_err(|_| bad())
}

/// [`parse_time`] as the wall-clock time it names in `tz` (an instant is
/// turned into its local time there).
pub fn parse_local(s: &str, tz: &TimeZone) -> Result<DateTime, String> {
    parse_time(s, tz)?;
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(tz.to_datetime(t));
    }
    s.parse::<DateTime>()
        .or_else(|_| s.parse::<Date>().map(|d| d.to_datetime(Time::MIN)))
        .map_err(|e| e.to_string())
}

fn time_of_day(s: &str) -> Result<Time, String> {
    if s.len() > 16 {
        return Err(format!(
            "{:?}: use HH:MM",
            crate::escape_bytes(s.as_bytes())
        ));
    }
    s.parse::<Time>()
        .map_err(|_| format!("{:?}: use HH:MM", crate::escape_bytes(s.as_bytes())))
}

impl ScheduleCfg {
    /// The checked schedule; errors name the key under `key`
    /// (`schedules.dba`); `known` says whether a contact exists.
    pub fn build(&self, key: &str, known: impl Fn(&str) -> bool) -> Result<Schedule, String> {
        let tz = zone(&self.time_zone).map_err(|e| format!("{key}.time_zone: {e}"))?;
        if self.layers.is_empty() && self.fallback.is_empty() {
            return Err(format!(
                "{key}: no layers and no fallback: nobody is ever on call"
            ));
        }
        let mut names = BTreeMap::new();
        let mut layers = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let at = format!("{key}.layers[{i}]");
            if !valid_name(&l.name) {
                return Err(format!(
                    "{at}.name: {:?}: 1-32 ASCII letters, digits, '-', '_'",
                    crate::escape_bytes(l.name.as_bytes())
                ));
            }
            if names.insert(l.name.clone(), i).is_some() {
                return Err(format!("{at}.name: {:?} is used twice", l.name));
            }
            if l.contacts.is_empty() {
                return Err(format!("{at}.contacts: empty"));
            }
            if let Some(c) = l.contacts.iter().find(|c| !known(c)) {
                return Err(format!("{at}.contacts: no contact {c:?}"));
            }
            let shift = ShiftLen::parse(&l.shift).map_err(|e| format!("{at}.shift: {e}"))?;
            let start = parse_local(&l.start, &tz).map_err(|e| format!("{at}.start: {e}"))?;
            let mut only = Vec::new();
            for (j, w) in l.only.iter().enumerate() {
                let wat = format!("{at}.only[{j}]");
                let mut days = [w.days.is_none(); 7];
                for d in w.days.iter().flatten() {
                    let Some(k) = DAYS.iter().position(|x| x.eq_ignore_ascii_case(d)) else {
                        return Err(format!(
                            "{wat}.days: {:?} is not one of {}",
                            crate::escape_bytes(d.as_bytes()),
                            DAYS.join(", ")
                        ));
                    };
                    days[k] = true;
                }
                if !days.contains(&true) {
                    return Err(format!("{wat}.days: empty (leave it out for every day)"));
                }
                only.push(Window {
                    days,
                    from: time_of_day(&w.from).map_err(|e| format!("{wat}.from: {e}"))?,
                    to: time_of_day(&w.to).map_err(|e| format!("{wat}.to: {e}"))?,
                });
            }
            layers.push(Layer {
                name: l.name.clone(),
                contacts: l.contacts.clone(),
                shift,
                start,
                only,
            });
        }
        if let Some(c) = self.fallback.iter().find(|c| !known(c)) {
            return Err(format!("{key}.fallback: no contact {c:?}"));
        }
        Ok(Schedule {
            tz,
            layers,
            fallback: self.fallback.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const DBA: &str = r#"{
      "time_zone": "Europe/Moscow",
      "layers": [
        {"name": "weekly", "contacts": ["ivan", "petr", "olga"],
         "shift": "1w", "start": "2026-11-30T10:00"},
        {"name": "nights", "contacts": ["night1", "night2"],
         "shift": "1d", "start": "2026-11-30T20:00",
         "only": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                   "from": "20:00", "to": "08:00"}]}
      ],
      "fallback": ["boss"]
    }"#;

    fn build(json: &str) -> Result<Schedule, String> {
        let cfg: ScheduleCfg = serde_json::from_str(json).map_err(|e| e.to_string())?;
        cfg.build("schedules.dba", |c| {
            ["ivan", "petr", "olga", "night1", "night2", "boss"].contains(&c)
        })
    }

    #[test]
    fn the_issue_sample_builds_and_says_who_is_on_call() {
        let s = build(DBA).unwrap();
        assert_eq!(s.layers.len(), 2);
        assert_eq!(
            s.layers[1].only[0].days,
            [true, true, true, true, true, false, false]
        );
        let at = |t: &str| parse_time(t, &s.tz).unwrap();
        let who = |t: &str| s.on_call(&[], at(t)).contacts;
        assert_eq!(who("2026-11-30T09:59"), ["boss"]);
        assert_eq!(who("2026-11-30T10:00"), ["ivan"]);
        assert_eq!(who("2026-11-30T20:00"), ["night1"]);
        assert_eq!(who("2026-12-01T07:59"), ["night1"]);
        assert_eq!(who("2026-12-01T08:00"), ["ivan"]);
        assert_eq!(who("2026-12-05T21:00"), ["ivan"]); // Saturday night: no window
        assert_eq!(who("2026-12-07T10:00"), ["petr"]);
        // an instant with an offset is that instant, whatever the zone
        assert_eq!(at("2026-11-30T07:00Z"), at("2026-11-30T10:00"));
        assert_eq!(at("2026-11-30T10:00+03:00"), at("2026-11-30T10:00"));
        assert_eq!(at("2026-11-30"), at("2026-11-30T00:00"));
    }

    #[test]
    fn a_start_with_an_offset_is_its_local_time_in_the_zone() {
        let s = build(&DBA.replace("2026-11-30T10:00\"", "2026-11-30T07:00Z\"")).unwrap();
        assert_eq!(s.layers[0].start, date(2026, 11, 30).at(10, 0, 0, 0));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                DBA.replace("Europe/Moscow", "Europe/Atlantis"),
                "schedules.dba.time_zone",
            ),
            (
                DBA.replace("\"1w\"", "\"1m\""),
                "schedules.dba.layers[0].shift",
            ),
            (
                DBA.replace("\"petr\"", "\"pert\""),
                "schedules.dba.layers[0].contacts: no contact \"pert\"",
            ),
            (
                DBA.replace("2026-11-30T10:00", "tomorrow"),
                "schedules.dba.layers[0].start",
            ),
            (
                DBA.replace("\"fri\"", "\"fry\""),
                "schedules.dba.layers[1].only[0].days",
            ),
            (
                DBA.replace("\"08:00\"", "\"8 am\""),
                "schedules.dba.layers[1].only[0].to",
            ),
            (DBA.replace("\"boss\"", "\"bos\""), "schedules.dba.fallback"),
            (
                DBA.replace("\"nights\"", "\"weekly\""),
                "schedules.dba.layers[1].name",
            ),
            (
                DBA.replace("\"shift\": \"1d\"", "\"shift\": \"1d\", \"color\": 1"),
                "color",
            ),
        ];
        for (json, want) in cases {
            let e = build(&json).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn times_people_type() {
        let tz = zone("Europe/Berlin").unwrap();
        let gap = parse_time("2026-03-29T02:30", &tz).unwrap();
        assert_eq!(gap, parse_time("2026-03-29T03:30", &tz).unwrap());
        let fold = parse_time("2026-10-25T02:30", &tz).unwrap();
        assert_eq!(fold, parse_time("2026-10-25T00:30Z", &tz).unwrap());
        for bad in [
            "",
            "now",
            "2026-13-01",
            "2026-11-30T25:00",
            "2026-11-30T10:00[Europe/Paris]",
        ] {
            assert!(parse_time(bad, &tz).is_err(), "{bad}");
        }
        assert!(zone("Mars/Olympus").is_err());
    }
}
