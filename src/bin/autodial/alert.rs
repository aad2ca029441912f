//! `autodial alert`: raise, acknowledge, resolve, list and show phone
//! alerts. Every command first completes a raise that was cut short.

use std::collections::BTreeMap;
use std::path::PathBuf;

use agi_callback::alert::config::{default_path, AlertsConfig};
use agi_callback::alert::pager::{check_request, Pager, PagerError, RaiseOutcome, RaiseRequest};
use agi_callback::alert::rfc3339;
use agi_callback::alert::store::Change;
use agi_callback::escape_bytes;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{EXIT_DUPLICATE, EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE};

pub const AFTER_HELP: &str = "\
Exit status: 0 done; 1 failure; 2 invalid arguments, unknown chain or no
matching route (nothing written); 3 raise of an alert already firing or
acked (only its text changed); 4 unknown id. ack and resolve are
idempotent: 0, saying what the state already was.

Config: --config, else $AUTODIAL_ALERTS, else $AST_CONFIG_DIR/alerts.json,
else /etc/asterisk/alerts.json. The spool is the config's spool_dir.";

#[derive(Args, Debug)]
pub struct AlertArgs {
    /// alerts.json
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: AlertCmd,
}

#[derive(Subcommand, Debug)]
enum AlertCmd {
    /// Raise an alert: speak TEXT to the chain's contacts, step by step,
    /// until one presses the ack digit (all calls are queued at once)
    #[command(after_help = AFTER_HELP)]
    Raise {
        /// Alert id: 1-64 ASCII letters, digits, '-', '_', '.'
        #[arg(long)]
        id: String,
        /// What is wrong, as it will be spoken
        #[arg(long)]
        text: String,
        /// Chain to use (else the first route matching the labels)
        #[arg(long, value_name = "NAME")]
        chain: Option<String>,
        /// A label KEY=VALUE for routing; repeatable
        #[arg(long = "label", value_name = "K=V")]
        labels: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge: stop calling
    #[command(after_help = AFTER_HELP)]
    Ack {
        id: String,
        /// Who acknowledged
        #[arg(long, value_name = "NAME", default_value = "cli")]
        by: String,
        #[arg(long)]
        json: bool,
    },
    /// Resolve: the problem is gone; pending calls are removed
    #[command(after_help = AFTER_HELP)]
    Resolve {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List alerts not resolved (with --all, every alert)
    #[command(after_help = AFTER_HELP)]
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one alert with every planned call and its outcome
    #[command(after_help = AFTER_HELP)]
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

fn time(t: Option<i64>) -> Value {
    t.and_then(rfc3339).map_or(Value::Null, Value::String)
}

fn shown(t: Option<i64>) -> String {
    t.and_then(rfc3339).unwrap_or_else(|| "-".into())
}

fn fail(e: PagerError) -> u8 {
    eprintln!("autodial alert: {e}");
    match e {
        PagerError::Invalid(_) | PagerError::NoRoute(_) => EXIT_USAGE,
        _ => EXIT_FAILURE,
    }
}

pub fn run(a: AlertArgs) -> u8 {
    let path = a.config.clone().unwrap_or_else(default_path);
    let cfg = match AlertsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autodial alert: {e}");
            return EXIT_FAILURE;
        }
    };
    // Validate what needs no state before anything is opened or written.
    let mut labels = BTreeMap::new();
    if let AlertCmd::Raise { labels: l, .. } = &a.cmd {
        for kv in l {
            match kv.split_once('=') {
                Some((k, v)) if !k.is_empty() => {
                    labels.insert(k.to_string(), v.to_string());
                }
                _ => {
                    eprintln!("autodial alert: --label {kv:?}: expected KEY=VALUE");
                    return EXIT_USAGE;
                }
            }
        }
    }
    if let AlertCmd::Raise {
        id, text, chain, ..
    } = &a.cmd
    {
        let r = RaiseRequest {
            id: id.clone(),
            text: text.clone(),
            chain: chain.clone(),
            labels: labels.clone(),
        };
        let checked = check_request(&r).and_then(|()| {
            cfg.choose_chain(chain.as_deref(), &labels)
                .map(|_| ())
                .map_err(|e| {
                    if chain.is_some() {
                        PagerError::Invalid(format!("chain: {e}"))
                    } else {
                        PagerError::NoRoute(e)
                    }
                })
        });
        if let Err(e) = checked {
            return fail(e);
        }
    }
    // As root, act as the spool's owner (the database must be Asterisk's
    // user's too, or its AGI is locked out of the WAL files).
    if let Err(e) = agi_callback::fsio::become_owner_of(&cfg.spool_dir) {
        eprintln!(
            "autodial alert: cannot act as the owner of {}: {e}",
            cfg.spool_dir.display()
        );
        return EXIT_FAILURE;
    }
    let mut pager = match Pager::open(cfg) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match pager.complete_pending() {
        Ok(0) => {}
        Ok(n) => eprintln!("autodial alert: completed {n} raise(s) cut short earlier"),
        Err(e) => eprintln!("autodial alert: cannot complete an earlier raise: {e}"),
    }
    match a.cmd {
        AlertCmd::Raise {
            id,
            text,
            chain,
            json,
            ..
        } => raise(
            &mut pager,
            &RaiseRequest {
                id,
                text,
                chain,
                labels,
            },
            json,
        ),
        AlertCmd::Ack { id, by, json } => change(&mut pager, &id, Some(&by), json),
        AlertCmd::Resolve { id, json } => change(&mut pager, &id, None, json),
        AlertCmd::List { all, json } => list(&pager, all, json),
        AlertCmd::Show { id, json } => show(&pager, &id, json),
    }
}

fn raise(p: &mut Pager, r: &RaiseRequest, as_json: bool) -> u8 {
    match p.raise(r) {
        Ok(RaiseOutcome::Raised {
            episode,
            calls,
            speech_error,
        }) => {
            let first = calls.iter().map(|c| c.at).min();
            if as_json {
                println!(
                    "{}",
                    json!({"status": "raised", "id": r.id, "episode": episode,
                           "calls": calls.len(), "first_call": time(first),
                           "speech_error": speech_error})
                );
            } else {
                println!(
                    "raised {} (episode {episode}): {} calls planned, the first at {}",
                    r.id,
                    calls.len(),
                    shown(first)
                );
            }
            if let Some(e) = speech_error {
                eprintln!(
                    "autodial alert: {e}; the calls play the fallback prompt {}",
                    p.cfg.fallback_prompt
                );
            }
            0
        }
        Ok(RaiseOutcome::Updated { episode, state, .. }) => {
            if as_json {
                println!(
                    "{}",
                    json!({"status": "updated", "id": r.id, "episode": episode,
                           "state": state.as_str()})
                );
            }
            eprintln!(
                "autodial alert: {} is already {state}; only its text changed (the calls still to come speak it)",
                r.id
            );
            EXIT_DUPLICATE
        }
        Err(e) => fail(e),
    }
}

/// `ack` (with `by`) or `resolve`.
fn change(p: &mut Pager, id: &str, by: Option<&str>, as_json: bool) -> u8 {
    let what = if by.is_some() { "acked" } else { "resolved" };
    let r = match by {
        Some(by) => p.ack(id, by),
        None => p.resolve(id),
    };
    let shown_id = escape_bytes(id.as_bytes());
    match r {
        Ok(None) => {
            eprintln!("autodial alert: no alert {shown_id:?}");
            if as_json {
                println!("{}", json!({"status": "unknown", "id": shown_id}));
            }
            EXIT_NOT_FOUND
        }
        Ok(Some(Change::Done { files })) => {
            if as_json {
                println!(
                    "{}",
                    json!({"status": what, "id": id, "calls_cancelled": files.len()})
                );
            } else {
                println!("{what} {id}: {} pending call(s) cancelled", files.len());
            }
            0
        }
        Ok(Some(Change::Already { state, by })) => {
            if as_json {
                println!(
                    "{}",
                    json!({"status": "unchanged", "id": id, "state": state.as_str(), "acked_by": by})
                );
            } else {
                match by {
                    Some(b) => println!("{id} is already {state} (acked by {b})"),
                    None => println!("{id} is already {state}"),
                }
            }
            0
        }
        Err(e) => fail(e),
    }
}

fn list(p: &Pager, all: bool, as_json: bool) -> u8 {
    let v = match p.store.list(all) {
        Ok(v) => v,
        Err(e) => return fail(e.into()),
    };
    if as_json {
        let arr: Vec<Value> = v.iter().map(|a| a.to_json(false)).collect();
        println!("{}", Value::Array(arr));
        return 0;
    }
    if v.is_empty() {
        println!("no alerts{}", if all { "" } else { " open" });
        return 0;
    }
    println!(
        "{:<32} {:<15} {:<21} {:<12} TEXT",
        "ID", "STATE", "RAISED", "ACKED BY"
    );
    for a in v {
        let text = escape_bytes(a.text.as_bytes());
        let text: String = text.chars().take(60).collect();
        println!(
            "{:<32} {:<15} {:<21} {:<12} {}",
            a.id,
            a.state.as_str(),
            shown(Some(a.raised_at)),
            escape_bytes(a.acked_by.as_deref().unwrap_or("-").as_bytes()),
            text
        );
    }
    0
}

fn show(p: &Pager, id: &str, as_json: bool) -> u8 {
    let a = match p.store.show(id) {
        Ok(Some(a)) => a,
        Ok(None) => {
            eprintln!("autodial alert: no alert {:?}", escape_bytes(id.as_bytes()));
            return EXIT_NOT_FOUND;
        }
        Err(e) => return fail(e.into()),
    };
    if as_json {
        println!("{}", a.to_json(true));
        return 0;
    }
    println!("id:          {}", a.id);
    println!("state:       {} (episode {})", a.state, a.episode);
    println!("text:        {}", escape_bytes(a.text.as_bytes()));
    println!("chain:       {}", a.chain);
    let labels: Vec<String> = a
        .labels
        .iter()
        .map(|(k, v)| escape_bytes(format!("{k}={v}").as_bytes()))
        .collect();
    println!("labels:      {}", labels.join(" "));
    println!("raised at:   {}", shown(Some(a.raised_at)));
    if let Some(b) = &a.acked_by {
        println!(
            "acked by:    {} at {}",
            escape_bytes(b.as_bytes()),
            shown(a.acked_at)
        );
    }
    if a.resolved_at.is_some() {
        println!("resolved at: {}", shown(a.resolved_at));
    }
    if let Some(e) = &a.speech_error {
        println!(
            "speech:      FAILED: {} (calls play the fallback prompt)",
            escape_bytes(e.as_bytes())
        );
    }
    println!("calls:");
    for c in &a.calls {
        println!(
            "  {} round {} step {}  {:<12} {:<16} {}",
            shown(Some(c.at)),
            c.round,
            c.step,
            c.contact,
            c.number,
            c.outcome
        );
    }
    0
}
