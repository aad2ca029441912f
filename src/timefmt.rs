//! How instants are shown everywhere (`show`, `list`, `--json`, HTTP):
//! RFC 3339 UTC to the second.

/// Unix seconds as RFC 3339 UTC to the second; `None` outside the calendar.
pub fn rfc3339(secs: i64) -> Option<String> {
    chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Serializes Unix seconds as [`rfc3339`] (null outside the calendar).
pub fn ser_time<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    match rfc3339(*t) {
        Some(v) => s.serialize_str(&v),
        None => s.serialize_none(),
    }
}

/// [`ser_time`] for an optional time.
pub fn ser_opt_time<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t.and_then(rfc3339) {
        Some(v) => s.serialize_str(&v),
        None => s.serialize_none(),
    }
}
