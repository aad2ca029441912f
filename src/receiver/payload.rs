//! Webhook payloads (Prometheus Alertmanager, Grafana, a generic one for
//! scripts and Zabbix) turned into the same raise or resolve the command
//! line makes. Pure: no I/O. Payloads are open (senders add fields), so
//! unknown fields are ignored here, unlike in our own config.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::alert::pager::RaiseRequest;
use crate::alert::{cut, valid_id};
use crate::error::Invalid;

/// Text of several alerts is cut to about this many bytes: some 20 seconds
/// of speech.
pub const MAX_SPOKEN: usize = 280;

/// What a webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Raise(RaiseRequest),
    Resolve { id: String },
}

/// One alert of an Alertmanager (or Grafana) group.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AmAlert {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

/// Alertmanager's webhook (version 4); Grafana's contact point sends the
/// same shape with more fields.
#[derive(Debug, Clone, Deserialize)]
pub struct AmPayload {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(rename = "groupKey")]
    pub group_key: String,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub alerts: Vec<AmAlert>,
    #[serde(default, rename = "commonLabels")]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default, rename = "commonAnnotations")]
    pub common_annotations: BTreeMap<String, String>,
    /// Grafana: the notification's title.
    #[serde(default)]
    pub title: Option<String>,
}

/// The generic payload: `{"id", "text", "chain", "labels", "status"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Generic {
    pub id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub chain: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// The alert id of a group: `prefix` and 16 hex digits of a hash of the
/// receiver and the group key, the same from every replica and retry, and
/// never taken raw into a path.
pub fn group_id(prefix: &str, receiver: &str, group_key: &str) -> String {
    format!(
        "{prefix}-{:016x}",
        crate::fsio::fnv64(&[receiver, group_key])
    )
}

/// What one alert says: `summary`, else `description`, else the alert
/// name and instance.
fn one_text(a: &AmAlert) -> String {
    let pick = |k: &str| {
        a.annotations
            .get(k)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };
    if let Some(s) = pick("summary").or_else(|| pick("description")) {
        return s.to_string();
    }
    let name = a.labels.get("alertname").map_or("alert", String::as_str);
    match a.labels.get("instance") {
        Some(i) => format!("{name} on {i}"),
        None => name.to_string(),
    }
}

/// The spoken text of a group's firing alerts: one alert's own text, or
/// "3 alerts: A; B; and 1 more", bounded to [`MAX_SPOKEN`] bytes.
pub fn group_text(alerts: &[AmAlert], fallback: &str) -> String {
    let firing: Vec<&AmAlert> = alerts.iter().filter(|a| a.status != "resolved").collect();
    let texts: Vec<String> = firing.iter().map(|a| one_text(a)).collect();
    match texts.as_slice() {
        [] => cut(fallback, MAX_SPOKEN).to_string(),
        [one] => cut(one, MAX_SPOKEN).to_string(),
        many => {
            let head = format!("{} alerts: ", many.len());
            let mut out = head.clone();
            let mut said = 0;
            for t in many {
                let more = many.len() - said - 1;
                let tail = if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                };
                let piece = if said == 0 {
                    t.clone()
                } else {
                    format!("; {t}")
                };
                if out.len() + piece.len() + tail.len() > MAX_SPOKEN && said > 0 {
                    break;
                }
                out.push_str(cut(
                    &piece,
                    MAX_SPOKEN.saturating_sub(out.len() + tail.len()),
                ));
                said += 1;
            }
            let more = many.len() - said;
            if more > 0 {
                out.push_str(&format!("; and {more} more"));
            }
            out
        }
    }
}

/// An Alertmanager or Grafana group: raise (firing) or resolve.
pub fn from_group(prefix: &str, p: &AmPayload) -> Result<Action, Invalid> {
    if p.group_key.is_empty() {
        return Err(Invalid::new("groupKey", "empty"));
    }
    let id = group_id(prefix, &p.receiver, &p.group_key);
    match p.status.as_str() {
        "firing" => {
            let fallback = p
                .title
                .clone()
                .or_else(|| p.common_labels.get("alertname").cloned())
                .unwrap_or_else(|| "An alert is firing".into());
            // Labels and text fitted to the bounds, never refused: the
            // sender does not retry a 4xx.
            Ok(Action::Raise(RaiseRequest::fitted(
                id,
                &group_text(&p.alerts, &fallback),
                None,
                &p.common_labels,
            )))
        }
        "resolved" => Ok(Action::Resolve { id }),
        other => Err(Invalid::new(
            "status",
            format!(
                "{:?} is neither firing nor resolved",
                crate::escape_bytes(cut(other, 40).as_bytes())
            ),
        )),
    }
}

/// The generic payload.
pub fn from_generic(g: &Generic) -> Result<Action, Invalid> {
    if !valid_id(&g.id) {
        return Err(Invalid::new(
            "id",
            format!(
                "{:?} is not 1-64 ASCII letters, digits, '-', '_', '.'",
                crate::escape_bytes(cut(&g.id, 80).as_bytes())
            ),
        ));
    }
    match g.status.as_deref().unwrap_or("firing") {
        "firing" => {
            let text = g
                .text
                .clone()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| Invalid::new("text", "missing or empty"))?;
            Ok(Action::Raise(RaiseRequest::fitted(
                g.id.clone(),
                &text,
                g.chain.clone(),
                &g.labels,
            )))
        }
        "resolved" => Ok(Action::Resolve { id: g.id.clone() }),
        other => Err(Invalid::new(
            "status",
            format!(
                "{:?} is neither firing nor resolved",
                crate::escape_bytes(cut(other, 40).as_bytes())
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> AmPayload {
        let p = format!(
            "{}/fixtures/alertmanager-0.25/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn real_alertmanager_groups_map_to_one_alert_each() {
        let p1 = fixture("01-firing-group-two-alerts.json");
        let Action::Raise(r) = from_group("am", &p1).unwrap() else {
            panic!()
        };
        assert!(r.id.starts_with("am-") && r.id.len() == 19, "{}", r.id);
        assert!(valid_id(&r.id));
        assert_eq!(r.text, "2 alerts: Disk full on db1; Disk full on db2");
        assert_eq!(r.labels["team"], "db");
        // the same group, partly resolved, and resolved: the same id
        let Action::Raise(r3) = from_group("am", &fixture("03-one-of-two-resolved.json")).unwrap()
        else {
            panic!()
        };
        assert_eq!(r3.id, r.id);
        assert_eq!(r3.text, "Disk full on db2");
        assert_eq!(
            from_group("am", &fixture("04-group-resolved.json")).unwrap(),
            Action::Resolve { id: r.id.clone() }
        );
        // another group: another id; a Cyrillic summary said as is
        let Action::Raise(r2) =
            from_group("am", &fixture("02-firing-group-cyrillic-summary.json")).unwrap()
        else {
            panic!()
        };
        assert_ne!(r2.id, r.id);
        assert_eq!(r2.text, "Гейтвей gw1 не отвечает");
        assert_eq!(
            from_group("am", &fixture("05-other-group-resolved.json")).unwrap(),
            Action::Resolve { id: r2.id }
        );
    }

    #[test]
    fn many_alerts_are_bounded_and_counted() {
        let alerts: Vec<AmAlert> = (0..50)
            .map(|i| AmAlert {
                status: "firing".into(),
                labels: [
                    ("alertname".to_string(), format!("Alert{i}")),
                    ("instance".to_string(), format!("host{i}")),
                ]
                .into(),
                annotations: BTreeMap::new(),
            })
            .collect();
        let t = group_text(&alerts, "x");
        assert!(t.len() <= MAX_SPOKEN, "{}", t.len());
        assert!(
            t.starts_with("50 alerts: Alert0 on host0; Alert1 on host1; "),
            "{t}"
        );
        assert!(t.ends_with(" more"), "{t}");
        let three = &alerts[..3];
        assert_eq!(
            group_text(three, "x"),
            "3 alerts: Alert0 on host0; Alert1 on host1; Alert2 on host2"
        );
        let long = vec![
            AmAlert {
                status: "firing".into(),
                annotations: [("summary".to_string(), "ж".repeat(500))].into(),
                ..Default::default()
            };
            3
        ];
        let t = group_text(&long, "x");
        assert!(t.len() <= MAX_SPOKEN && t.ends_with("; and 2 more"), "{t}");
    }

    #[test]
    fn generic_payloads() {
        let g: Generic =
            serde_json::from_str(r#"{"id": "zbx-1", "text": "x", "labels": {"team": "db"}}"#)
                .unwrap();
        assert!(matches!(from_generic(&g).unwrap(), Action::Raise(_)));
        let g: Generic = serde_json::from_str(r#"{"id": "../etc/passwd", "text": "x"}"#).unwrap();
        assert!(from_generic(&g).unwrap_err().field == "id");
        let g: Generic = serde_json::from_str(r#"{"id": "a", "status": "resolved"}"#).unwrap();
        assert_eq!(
            from_generic(&g).unwrap(),
            Action::Resolve { id: "a".into() }
        );
        let g: Generic = serde_json::from_str(r#"{"id": "a"}"#).unwrap();
        assert!(from_generic(&g).unwrap_err().field == "text");
    }
}
