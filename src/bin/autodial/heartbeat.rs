//! `autodial heartbeat`: ping, list, pause and resume heartbeats (a dead
//! man's switch whose timer is a call file in Asterisk's spool), through
//! the pager's door.

use std::path::PathBuf;

use agi_callback::alert::config::{default_path, AlertsConfig};
use agi_callback::alert::pager::{unix_now, HeartbeatView, Pager, PagerError};
use agi_callback::error_chain;
use agi_callback::heartbeat::HbState;
use clap::{Args, Subcommand};

use super::{pager_fail, print_json, shown, EXIT_FAILURE, EXIT_NOT_FOUND};

pub const AFTER_HELP: &str = "\
Exit status: 0 done; 1 failure (list: a heartbeat was never pinged, or its
timer is missing); 2 invalid arguments; 4 no such heartbeat in the config.

Config: --config, else $AUTODIAL_ALERTS, else $AST_CONFIG_DIR/alerts.json,
else /etc/asterisk/alerts.json (its \"heartbeats\").";

#[derive(Args, Debug)]
pub struct HeartbeatArgs {
    /// alerts.json
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: HeartbeatCmd,
}

#[derive(Subcommand, Debug)]
enum HeartbeatCmd {
    /// Record a ping now: the heartbeat is alive (an expired one recovers
    /// and its alert is resolved)
    #[command(after_help = AFTER_HELP)]
    Ping {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Every heartbeat: state, last ping, deadline, timer file
    #[command(after_help = AFTER_HELP)]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Maintenance: neither page nor need pings until resumed
    #[command(after_help = AFTER_HELP)]
    Pause {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Arm a paused heartbeat again, from now
    #[command(after_help = AFTER_HELP)]
    Resume {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

fn line(v: &HeartbeatView) {
    println!(
        "{:<20} {:<13} {:<21} {:<21} {} ({})",
        v.name,
        v.state.as_str(),
        shown(v.last_ping),
        shown(v.deadline),
        v.timer_file.as_deref().unwrap_or("-"),
        v.timer
    );
}

pub fn run(a: HeartbeatArgs) -> u8 {
    let path = a.config.clone().unwrap_or_else(default_path);
    let cfg = match AlertsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autodial heartbeat: {e}");
            return EXIT_FAILURE;
        }
    };
    // an unknown name changes nothing: checked before anything is opened
    if let HeartbeatCmd::Ping { name, .. }
    | HeartbeatCmd::Pause { name, .. }
    | HeartbeatCmd::Resume { name, .. } = &a.cmd
    {
        if !cfg.heartbeats.contains_key(name) {
            eprintln!(
                "autodial heartbeat: no heartbeat {:?} in {}",
                agi_callback::escape_bytes(name.as_bytes()),
                path.display()
            );
            return EXIT_NOT_FOUND;
        }
    }
    agi_callback::logging::init_stderr(log::LevelFilter::Warn);
    // `list` only looks (it shows a missing timer as missing); the others
    // first finish what is owed and put missing timers back
    let started = if matches!(a.cmd, HeartbeatCmd::List { .. }) {
        Pager::start_to_look(cfg).map(|p| (p, Default::default()))
    } else {
        Pager::start(cfg)
    };
    let (pager, finished): (Pager, agi_callback::alert::pager::Finished) = match started {
        Ok(p) => p,
        Err(e) => return pager_fail("heartbeat", e),
    };
    for e in &finished.failed {
        eprintln!("autodial heartbeat: still owed: {}", error_chain(e));
    }
    let now = unix_now();
    match a.cmd {
        HeartbeatCmd::Ping { name, json } => match pager.ping(&name, now) {
            Ok(p) => {
                if json {
                    print_json(&p);
                } else if p.status == "recovered" {
                    println!("{name}: recovered; alert hb-{name} resolved");
                }
                0
            }
            Err(e) => pager_fail("heartbeat", e),
        },
        HeartbeatCmd::List { json } => match pager.heartbeats(now) {
            Ok(v) => {
                if json {
                    print_json(&v);
                } else if v.is_empty() {
                    println!("no heartbeats in the config");
                } else {
                    println!(
                        "{:<20} {:<13} {:<21} {:<21} TIMER",
                        "NAME", "STATE", "LAST PING", "DEADLINE"
                    );
                    v.iter().for_each(line);
                }
                let never: Vec<&str> = v
                    .iter()
                    .filter(|h| h.state == HbState::NeverPinged)
                    .map(|h| h.name.as_str())
                    .collect();
                let missing: Vec<&str> = v
                    .iter()
                    .filter(|h| h.timer == "missing")
                    .map(|h| h.name.as_str())
                    .collect();
                if !never.is_empty() {
                    eprintln!(
                        "autodial heartbeat: never pinged: {} (a typo in a cron job?)",
                        never.join(", ")
                    );
                }
                if !missing.is_empty() {
                    eprintln!("autodial heartbeat: timer missing: {}", missing.join(", "));
                }
                if never.is_empty() && missing.is_empty() {
                    0
                } else {
                    EXIT_FAILURE
                }
            }
            Err(e) => pager_fail("heartbeat", e),
        },
        HeartbeatCmd::Pause { name, json } => done(pager.pause(&name, now), json),
        HeartbeatCmd::Resume { name, json } => done(pager.resume(&name, now), json),
    }
}

fn done(r: Result<HeartbeatView, PagerError>, json: bool) -> u8 {
    match r {
        Ok(v) => {
            if json {
                print_json(&v);
            } else {
                line(&v);
            }
            0
        }
        Err(e) => pager_fail("heartbeat", e),
    }
}
