//! `autodial alert`: raise, acknowledge, resolve, list and show phone
//! alerts. Every command first completes a raise that was cut short.

use std::collections::BTreeMap;
use std::path::PathBuf;

use agi_callback::alert::config::{default_path, AlertsConfig};
use agi_callback::alert::pager::{check_raise, Pager, RaiseOutcome, RaiseRequest, Report};
use agi_callback::alert::store::Change;
use agi_callback::{error_chain, escape_bytes};
use clap::{Args, Subcommand};

use super::{
    pager_fail, print_json, shown, EXIT_DUPLICATE, EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE,
};

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
    /// Render ahead what the phone calls and the alert line say besides
    /// the messages (phrases, the line's menu, contacts' and schedules'
    /// names) in every language of the contacts; `autodial serve` does it
    /// at its start and on SIGHUP. Exit 1 if something could not be
    /// rendered (the calls then fall back to stock prompts).
    #[command(after_help = AFTER_HELP)]
    Prepare {
        #[arg(long)]
        json: bool,
    },
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
            labels_cut: 0,
        };
        if let Err(e) = check_raise(&cfg, &r) {
            return pager_fail("alert", e);
        }
    }
    // WARN lines (a step with nobody on call) on stderr
    agi_callback::logging::init_stderr(log::LevelFilter::Warn);
    // The door: as root, act as the owner of outgoing/ and the state
    // directory; open; finish what earlier attempts left owed.
    let (pager, finished) = match Pager::start(cfg) {
        Ok(p) => p,
        Err(e) => return pager_fail("alert", e),
    };
    if finished.done > 0 {
        eprintln!(
            "autodial alert: settled what the spool owed {} alert(s) from earlier attempts",
            finished.done
        );
    }
    for e in &finished.failed {
        eprintln!("autodial alert: still owed: {}", error_chain(e));
    }
    match a.cmd {
        AlertCmd::Raise {
            id,
            text,
            chain,
            json,
            ..
        } => raise(
            &pager,
            &RaiseRequest {
                id,
                text,
                chain,
                labels,
                labels_cut: 0,
            },
            json,
        ),
        AlertCmd::Ack { id, by, json } => change(&pager, &id, Some(&by), json),
        AlertCmd::Resolve { id, json } => change(&pager, &id, None, json),
        AlertCmd::List { all, json } => list(&pager, all, json),
        AlertCmd::Show { id, json } => show(&pager, &id, json),
        AlertCmd::Prepare { json } => prepare(&pager, json),
    }
}

fn prepare(p: &Pager, as_json: bool) -> u8 {
    let r = p.prepare(None);
    if as_json {
        print_json(&r);
    } else {
        println!(
            "languages {}: {} rendered, {} already rendered",
            r.languages.join(", "),
            r.rendered,
            r.cached
        );
        for e in &r.errors {
            eprintln!("autodial alert prepare: {e}");
        }
    }
    if r.errors.is_empty() {
        0
    } else {
        EXIT_FAILURE
    }
}

fn raise(p: &Pager, r: &RaiseRequest, as_json: bool) -> u8 {
    let o = match p.raise(r, None) {
        Ok(o) => o,
        Err(e) => return pager_fail("alert", e),
    };
    let rep = Report::of_raise(&r.id, &o);
    if as_json {
        print_json(&rep);
    }
    match o {
        RaiseOutcome::Raised {
            episode,
            speech_error,
            ..
        } => {
            if !as_json {
                println!(
                    "raised {} (episode {episode}): {} calls planned, the first at {}",
                    r.id,
                    rep.calls.unwrap_or(0),
                    shown(rep.first_call)
                );
            }
            if let Some(e) = speech_error {
                eprintln!(
                    "autodial alert: {e}; the calls play the fallback prompt {}",
                    p.config().fallback_prompt
                );
            }
            0
        }
        RaiseOutcome::Updated { state, changed, .. } => {
            if changed {
                eprintln!(
                    "autodial alert: {} is already {state}; only its text changed (the calls still to come speak it)",
                    r.id
                );
            } else {
                eprintln!(
                    "autodial alert: {} is already {state} with this text: a duplicate",
                    r.id
                );
            }
            EXIT_DUPLICATE
        }
    }
}

/// `ack` (with `by`) or `resolve`.
fn change(p: &Pager, id: &str, by: Option<&str>, as_json: bool) -> u8 {
    let what = if by.is_some() { "acked" } else { "resolved" };
    let r = match by {
        Some(by) => p.ack(id, by, agi_callback::alert::Via::Cli),
        None => p.resolve(id),
    };
    let c = match r {
        Ok(c) => c,
        Err(e) => return pager_fail("alert", e),
    };
    let rep = Report::of_change(what, id, &c);
    if as_json {
        print_json(&rep);
    }
    match c {
        None => {
            eprintln!("autodial alert: no alert {:?}", rep.id);
            EXIT_NOT_FOUND
        }
        Some(Change::Done { cancelled }) => {
            if !as_json {
                println!("{what} {id}: {cancelled} pending call(s) cancelled");
            }
            0
        }
        Some(Change::Already { state, by }) => {
            if !as_json {
                match by {
                    Some(b) => println!(
                        "{id} is already {state} (acked by {})",
                        escape_bytes(b.as_bytes())
                    ),
                    None => println!("{id} is already {state}"),
                }
            }
            0
        }
    }
}

fn list(p: &Pager, all: bool, as_json: bool) -> u8 {
    let v = match p.list(all) {
        Ok(v) => v,
        Err(e) => return pager_fail("alert", e),
    };
    if as_json {
        print_json(&v);
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
    let a = match p.show(id) {
        Ok(Some(a)) => a,
        Ok(None) => {
            eprintln!("autodial alert: no alert {:?}", escape_bytes(id.as_bytes()));
            return EXIT_NOT_FOUND;
        }
        Err(e) => return pager_fail("alert", e),
    };
    if as_json {
        print_json(&a);
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
    if a.labels_cut > 0 {
        println!(
            "             ({} label(s) cut to fit the bounds: at most 64, 256 bytes each)",
            a.labels_cut
        );
    }
    println!("raised at:   {}", shown(Some(a.raised_at)));
    if let Some(b) = &a.acked_by {
        println!(
            "acked by:    {} at {}{}",
            escape_bytes(b.as_bytes()),
            shown(a.acked_at),
            a.acked_via
                .map(|v| format!(" (via {v})"))
                .unwrap_or_default()
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
    for c in a.calls.iter().flatten() {
        let from = match (&c.schedule, &c.why) {
            (Some(s), Some(w)) => format!("  (schedule {s}: {w})"),
            (Some(s), None) => format!("  (schedule {s})"),
            _ => String::new(),
        };
        println!(
            "  {} round {} step {}  {:<12} {:<16} {}{from}",
            shown(Some(c.at)),
            c.round,
            c.step,
            if c.contact.is_empty() {
                "-"
            } else {
                &c.contact
            },
            if c.number.is_empty() { "-" } else { &c.number },
            c.outcome
        );
    }
    0
}
