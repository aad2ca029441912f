//! The alert line's decisions as data (issue 20): who is calling, whether a
//! PIN must be asked, whether a number is locked out. No I/O, no clock: the
//! caller ID, the PIN entered and the instant are arguments; the pager
//! stores the failures, the AGI program holds the conversation.

use crate::alert::config::AlertsConfig;
use crate::alert::store::CallRow;
use crate::alert::Outcome;
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

/// Who was called for an alert, in the order of their first call: every
/// call placed or ringing by `now` (its time has come and nothing
/// cancelled, re-planned or skipped it).
pub fn called(calls: &[CallRow], now: i64) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut sorted: Vec<&CallRow> = calls.iter().collect();
    sorted.sort_by_key(|c| (c.at, c.id));
    for c in sorted {
        let placed = match c.outcome {
            Outcome::Cancelled | Outcome::Replanned | Outcome::NobodyOnCall => false,
            Outcome::Scheduled => c.at <= now,
            _ => true,
        };
        if placed && !out.contains(&c.contact) {
            out.push(c.contact.clone());
        }
    }
    out
}

/// Seconds of silence after an alert that move on to the next one.
pub const SILENCE_SECONDS: u32 = 10;
/// Tries at the PIN, and the seconds each may take.
pub const PIN_TRIES: usize = 3;
pub const PIN_SECONDS: u32 = 5;

/// The line's keys (`line.keys`, checked distinct when the config loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    pub ack: char,
    pub next: char,
    pub repeat: char,
    pub oncall: char,
    pub acked_too: char,
}

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Ack,
    Next,
    Repeat,
    OnCall,
    AckedToo,
}

impl Keys {
    /// The keys of `cfg` (`line.keys.ack` defaults to `ack_digit`).
    pub fn of(cfg: &AlertsConfig) -> Keys {
        let k = &cfg.line.keys;
        let one = |s: &str, d: char| s.chars().next().unwrap_or(d);
        Keys {
            ack: k
                .ack
                .as_deref()
                .map_or(cfg.ack_digit, |s| one(s, cfg.ack_digit)),
            next: one(&k.next, '#'),
            repeat: one(&k.repeat, '*'),
            oncall: one(&k.oncall, '0'),
            acked_too: one(&k.acked_too, '9'),
        }
    }

    /// In the order the menu says them.
    pub fn all(&self) -> [char; 5] {
        [
            self.ack,
            self.next,
            self.repeat,
            self.oncall,
            self.acked_too,
        ]
    }

    /// The escape digits of every prompt: all five keys.
    pub fn escape(&self) -> String {
        self.all().iter().collect()
    }

    /// What `c` asks for; `None`: no key of the line (ignored).
    pub fn key(&self, c: char) -> Option<Key> {
        [
            (self.ack, Key::Ack),
            (self.next, Key::Next),
            (self.repeat, Key::Repeat),
            (self.oncall, Key::OnCall),
            (self.acked_too, Key::AckedToo),
        ]
        .into_iter()
        .find(|(k, _)| *k == c)
        .map(|(_, w)| w)
    }
}

/// One alert of the walk: an index into the firing list or the
/// acknowledged one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    Firing(usize),
    Acked(usize),
}

/// What the conversation does after a key (or silence) on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Acknowledge this alert, then go on with the next.
    Ack(Item),
    /// Say who is on call, then this alert again.
    OnCall,
    /// The acknowledged alerts were added after the firing ones: say how
    /// many, then this alert again (or the first of them when the firing
    /// ones are done).
    AckedAdded(usize),
    /// Say the alert now current (or "End of alerts" when there is none).
    Go,
}

/// The caller's way through the alerts: the firing ones newest first,
/// then (once asked for) the acknowledged ones. Pure: the conversation
/// asks it what comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    firing: usize,
    acked: usize,
    with_acked: bool,
    pos: usize,
}

impl Walk {
    pub fn new(firing: usize, acked: usize) -> Walk {
        Walk {
            firing,
            acked,
            with_acked: false,
            pos: 0,
        }
    }

    fn len(&self) -> usize {
        self.firing + if self.with_acked { self.acked } else { 0 }
    }

    /// The alert to say now; `None`: the end.
    pub fn current(&self) -> Option<Item> {
        (self.pos < self.len()).then(|| {
            if self.pos < self.firing {
                Item::Firing(self.pos)
            } else {
                Item::Acked(self.pos - self.firing)
            }
        })
    }

    /// After an alert (or at the end): `key` pressed, or `None` for
    /// silence, which moves on like the next key.
    pub fn on(&mut self, key: Option<Key>) -> Then {
        let cur = self.current();
        match key {
            None | Some(Key::Next) => {
                self.pos = (self.pos + 1).min(self.len());
                Then::Go
            }
            Some(Key::Repeat) => Then::Go,
            Some(Key::OnCall) => Then::OnCall,
            Some(Key::AckedToo) if !self.with_acked => {
                self.with_acked = true;
                Then::AckedAdded(self.acked)
            }
            Some(Key::AckedToo) => Then::Go,
            Some(Key::Ack) => match cur {
                Some(item) => {
                    self.pos += 1;
                    Then::Ack(item)
                }
                None => Then::Go,
            },
        }
    }
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
    fn the_walk_goes_through_firing_then_acked_on_request() {
        use Item::*;
        let mut w = Walk::new(2, 1);
        assert_eq!(w.current(), Some(Firing(0)));
        assert_eq!(w.on(Some(Key::Repeat)), Then::Go);
        assert_eq!(w.current(), Some(Firing(0)));
        assert_eq!(w.on(Some(Key::OnCall)), Then::OnCall);
        assert_eq!(w.current(), Some(Firing(0)));
        assert_eq!(w.on(Some(Key::Ack)), Then::Ack(Firing(0)));
        assert_eq!(w.current(), Some(Firing(1)));
        // silence moves on: the end without the acked ones
        assert_eq!(w.on(None), Then::Go);
        assert_eq!(w.current(), None);
        assert_eq!(w.on(Some(Key::Ack)), Then::Go, "nothing to ack at the end");
        // asked for at the end: the acked ones come
        assert_eq!(w.on(Some(Key::AckedToo)), Then::AckedAdded(1));
        assert_eq!(w.current(), Some(Acked(0)));
        assert_eq!(w.on(Some(Key::AckedToo)), Then::Go, "added once");
        assert_eq!(w.on(Some(Key::Next)), Then::Go);
        assert_eq!(w.current(), None);
        assert_eq!(w.on(Some(Key::Next)), Then::Go);
        assert_eq!(w.current(), None, "stays at the end");
        // nothing firing: the acked ones on request only
        let mut w = Walk::new(0, 3);
        assert_eq!(w.current(), None);
        assert_eq!(w.on(Some(Key::AckedToo)), Then::AckedAdded(3));
        assert_eq!(w.current(), Some(Acked(0)));
    }

    #[test]
    fn who_was_called_is_every_call_placed_or_ringing() {
        let call = CallRow::sample;
        let calls = [
            call(3, "olga", 200, Outcome::Scheduled),
            call(1, "ivan", 100, Outcome::NoAnswer),
            call(2, "petr", 150, Outcome::Scheduled),
            call(4, "ivan", 160, Outcome::AnsweredNoAck),
            call(5, "anna", 120, Outcome::Replanned),
            call(6, "boris", 130, Outcome::Cancelled),
            call(7, "nobody", 140, Outcome::NobodyOnCall),
        ];
        assert_eq!(called(&calls, 150), ["ivan", "petr"]);
        assert_eq!(called(&calls, 149), ["ivan"]);
        assert_eq!(called(&calls, 300), ["ivan", "petr", "olga"]);
        // a call whose time has not come was not placed
        assert!(called(&calls[..1], 199).is_empty());
    }

    #[test]
    fn keys_default_and_configured() {
        let k = Keys::of(&cfg(""));
        assert_eq!(k.all(), ['1', '#', '*', '0', '9']);
        assert_eq!(k.escape(), "1#*09");
        assert_eq!(k.key('#'), Some(Key::Next));
        assert_eq!(k.key('5'), None);
        let k = Keys::of(&cfg(r#", "line": {"keys": {"ack": "5", "next": "6"}}"#));
        assert_eq!(k.all(), ['5', '6', '*', '0', '9']);
        assert_eq!(k.key('1'), None);
        assert_eq!(k.key('5'), Some(Key::Ack));
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
