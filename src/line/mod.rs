//! The alert line's decisions as data (issue 20): who is calling, whether a
//! PIN must be asked, whether a number is locked out. No I/O, no clock: the
//! caller ID, the PIN entered and the instant are arguments; the pager
//! stores the failures, the AGI program holds the conversation.

use crate::alert::config::AlertsConfig;
use crate::number::{rewrite, valid_number};

/// Wrong PINs from one number within [`LOCK_WINDOW`] that lock it.
pub const LOCK_AFTER: usize = 10;
/// The window those failures are counted in, and how long a lock lasts.
pub const LOCK_WINDOW: i64 = 3600;

/// Who is calling, by caller ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No contact has this number: "This number is not registered".
    Unknown,
    /// A contact; `pin` says a PIN must be asked (always when they have
    /// one: caller IDs are easy to forge).
    Known { contact: String, pin: bool },
    /// A contact without a PIN while `line.trust_caller_id` is false.
    Refused { contact: String },
}

/// The caller ID brought to one form (`line.rewrite`); `None` when it is no
/// number at all.
pub fn normalise(cfg: &AlertsConfig, raw: &str) -> Option<String> {
    let raw = raw.trim();
    valid_number(raw.as_bytes()).then(|| rewrite(raw, &cfg.line.rewrite))
}

/// Who `raw` (the caller ID) is: the contact whose `number` or one of whose
/// `numbers` is the same after `line.rewrite` (the first by name when
/// several share it).
pub fn identify(cfg: &AlertsConfig, raw: &str) -> Caller {
    let Some(n) = normalise(cfg, raw) else {
        return Caller::Unknown;
    };
    let same = |x: &str| rewrite(x, &cfg.line.rewrite) == n;
    let Some((name, c)) = cfg
        .contacts
        .iter()
        .find(|(_, c)| same(&c.number) || c.numbers.iter().any(|x| same(x)))
    else {
        return Caller::Unknown;
    };
    match (&c.pin, cfg.line.trust_caller_id) {
        (Some(_), _) => Caller::Known {
            contact: name.clone(),
            pin: true,
        },
        (None, true) => Caller::Known {
            contact: name.clone(),
            pin: false,
        },
        (None, false) => Caller::Refused {
            contact: name.clone(),
        },
    }
}

/// Is `entered` the contact's PIN? Compared in time that does not depend
/// on where they differ.
pub fn pin_ok(cfg: &AlertsConfig, contact: &str, entered: &str) -> bool {
    let Some(pin) = cfg.contacts.get(contact).and_then(|c| c.pin.as_deref()) else {
        return false;
    };
    let (a, b) = (pin.as_bytes(), entered.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff));
    }
    diff == 0
}

/// Until when a number is locked, given the instants of its wrong PINs:
/// [`LOCK_AFTER`] of them within [`LOCK_WINDOW`] lock it for that long
/// from the last of them. `None`: not locked at `now`.
pub fn locked_until(failures: &[i64], now: i64) -> Option<i64> {
    let mut f: Vec<i64> = failures.to_vec();
    f.sort_unstable();
    f.windows(LOCK_AFTER)
        .filter(|w| w[LOCK_AFTER - 1] - w[0] < LOCK_WINDOW)
        .map(|w| w[LOCK_AFTER - 1] + LOCK_WINDOW)
        .max()
        .filter(|&until| now < until)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> AlertsConfig {
        AlertsConfig::from_json(
            format!(
                r#"{{"call": {{"channel": "PJSIP/{{number}}@trunk"}},
                "contacts": {{"ivan": {{"number": "89161112233", "pin": "4711",
                                        "numbers": ["84957776655"]}},
                             "petr": {{"number": "89162223344"}}}},
                "chains": {{"c": {{"steps": [{{"contacts": ["ivan"]}}]}}}}{extra}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    const RU: &str = r#", "line": {"rewrite": [{"prefix": "+7", "replace": "8"},
        {"prefix": "7", "replace": "8", "digits": 11}]}"#;

    #[test]
    fn callers_are_known_by_any_of_their_numbers_in_any_form() {
        let c = cfg(RU);
        let ivan = Caller::Known {
            contact: "ivan".into(),
            pin: true,
        };
        for n in [
            "89161112233",
            "+79161112233",
            "79161112233",
            "84957776655",
            "+74957776655",
        ] {
            assert_eq!(identify(&c, n), ivan, "{n}");
        }
        for n in [
            "89161112234",
            "",
            "unknown",
            "anonymous",
            "8916111223x",
            "+",
        ] {
            assert_eq!(identify(&c, n), Caller::Unknown, "{n:?}");
        }
        // no pin: refused unless caller IDs are trusted
        assert_eq!(
            identify(&c, "+79162223344"),
            Caller::Refused {
                contact: "petr".into()
            }
        );
        let t = cfg(r#", "line": {"trust_caller_id": true}"#);
        assert_eq!(
            identify(&t, "89162223344"),
            Caller::Known {
                contact: "petr".into(),
                pin: false
            }
        );
    }

    #[test]
    fn pins_and_lockouts() {
        let c = cfg("");
        assert!(pin_ok(&c, "ivan", "4711"));
        for bad in ["4712", "471", "47111", "", "4711 "] {
            assert!(!pin_ok(&c, "ivan", bad), "{bad:?}");
        }
        assert!(!pin_ok(&c, "petr", ""), "no pin: nothing matches");
        // 9 wrong in an hour: not locked; the 10th locks for an hour
        let f: Vec<i64> = (0..9).map(|i| 1000 + i * 60).collect();
        assert_eq!(locked_until(&f, 2000), None);
        let mut f10 = f.clone();
        f10.push(1600);
        assert_eq!(locked_until(&f10, 1601), Some(1600 + 3600));
        assert_eq!(locked_until(&f10, 1600 + 3600), None);
        // 10 spread over more than an hour: not locked
        let slow: Vec<i64> = (0..10).map(|i| i * 400).collect();
        assert_eq!(locked_until(&slow, 3700), None);
    }

    #[test]
    fn line_config_errors_name_the_key() {
        for (extra, want) in [
            (
                r#", "line": {"keys": {"next": "1"}}"#,
                "line.keys.next: \"1\" is already line.keys.ack",
            ),
            (
                r#", "line": {"keys": {"repeat": "**"}}"#,
                "line.keys.repeat",
            ),
            (
                r#", "line": {"rewrite": [{"prefix": "x", "replace": "8"}]}"#,
                "line.rewrite[0]",
            ),
            (r#", "line": {"pin": "1"}"#, "pin"),
        ] {
            let json = format!(
                r#"{{"call": {{"channel": "PJSIP/{{number}}@trunk"}},
                "contacts": {{"ivan": {{"number": "1"}}}},
                "chains": {{"c": {{"steps": [{{"contacts": ["ivan"]}}]}}}}{extra}}}"#
            );
            let e = AlertsConfig::from_json(json.as_bytes()).unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        }
        let bad_pin = r#"{"call": {"channel": "PJSIP/{number}@trunk"},
            "contacts": {"ivan": {"number": "1", "pin": "12a4"}},
            "chains": {"c": {"steps": [{"contacts": ["ivan"]}]}}}"#;
        let e = AlertsConfig::from_json(bad_pin.as_bytes()).unwrap_err();
        assert!(e.contains("contacts.ivan.pin"), "{e}");
    }
}
