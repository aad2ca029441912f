//! `autodial oncall`: who is on call, shifts, gaps, calendar feeds,
//! overrides and re-planning, through the pager's door.

use std::path::PathBuf;

use agi_callback::alert::config::{default_path, AlertsConfig};
use agi_callback::alert::pager::{unix_now, Pager};
use agi_callback::oncall::config::parse_time;
use agi_callback::oncall::view::{NowView, Shift};
use agi_callback::oncall::Schedule;
use clap::{Args, Subcommand};

use super::{pager_fail, print_json, EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE};

pub const AFTER_HELP: &str = "\
Times (--at, --from, --to): YYYY-MM-DDTHH:MM without an offset is
wall-clock time in the schedule's time_zone (a time skipped by DST means
the same time one gap later, a time that happens twice the first); with
an offset (+03:00) or Z it is that instant; 'now' is now.

Exit status: 0 done; 1 failure (check: a gap found); 2 invalid arguments
(nothing changed); 4 unknown override id.

Config: --config, else $AUTODIAL_ALERTS, else $AST_CONFIG_DIR/alerts.json,
else /etc/asterisk/alerts.json.";

#[derive(Args, Debug)]
pub struct OncallArgs {
    /// alerts.json
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: OncallCmd,
}

#[derive(Subcommand, Debug)]
enum OncallCmd {
    /// Who is on call now (or at --at) per schedule, since and until when,
    /// and why (layer, override, fallback)
    #[command(after_help = AFTER_HELP)]
    Now {
        /// Only this schedule
        #[arg(long, value_name = "NAME")]
        schedule: Option<String>,
        /// The instant to ask about [default: now]
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The final shifts of a schedule (after layers, windows, overrides and
    /// fallback), adjacent pieces of the same person merged
    #[command(after_help = AFTER_HELP)]
    Shifts {
        #[arg(long, value_name = "NAME")]
        schedule: String,
        /// Only this contact's shifts
        #[arg(long, value_name = "NAME")]
        contact: Option<String>,
        /// Start [default: now]
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// End
        #[arg(long, value_name = "TIME", conflicts_with = "days")]
        to: Option<String>,
        /// Days from --from [default: 14]
        #[arg(long, value_name = "N")]
        days: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// List every gap (nobody on call) of every schedule a chain uses;
    /// exit 1 when there is one
    #[command(after_help = AFTER_HELP)]
    Check {
        /// Days ahead to look
        #[arg(long, value_name = "N", default_value_t = 28)]
        days: u32,
        /// Start [default: now]
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the iCalendar (RFC 5545) feed of a schedule's shifts, or of
    /// one contact's shifts across schedules (60 days ahead)
    #[command(after_help = AFTER_HELP)]
    #[command(group = clap::ArgGroup::new("whose").required(true).args(["schedule", "contact"]))]
    Ical {
        #[arg(long, value_name = "NAME")]
        schedule: Option<String>,
        #[arg(long, value_name = "NAME")]
        contact: Option<String>,
    },
    /// Overrides: someone covers a schedule for a while
    #[command(subcommand)]
    Override(OverrideCmd),
    /// Re-plan the calls to come of firing alerts for who is on call now
    /// (after editing the schedules; `autodial serve` does it on SIGHUP)
    #[command(after_help = AFTER_HELP)]
    Replan {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum OverrideCmd {
    /// CONTACT covers SCHEDULE from --from to --to (at most a year);
    /// prints the override's id. The calls to come are re-planned
    #[command(after_help = AFTER_HELP)]
    Add {
        #[arg(long, value_name = "NAME")]
        schedule: String,
        #[arg(long, value_name = "NAME")]
        contact: String,
        #[arg(long, value_name = "TIME")]
        from: String,
        #[arg(long, value_name = "TIME")]
        to: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an override; the calls to come are re-planned
    #[command(after_help = AFTER_HELP)]
    Remove {
        #[arg(value_name = "ID")]
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Overrides not yet ended (with --all, every one kept)
    #[command(after_help = AFTER_HELP)]
    List {
        #[arg(long, value_name = "NAME")]
        schedule: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
}

/// A time given for `schedule` (its zone reads one without an offset).
fn time_in(s: &Schedule, flag: &str, v: Option<&str>, now: i64) -> Result<i64, u8> {
    match v {
        None | Some("now") => Ok(now),
        Some(v) => parse_time(v, &s.tz).map_err(|e| {
            eprintln!("autodial oncall: {flag}: {e}");
            EXIT_USAGE
        }),
    }
}

fn schedule<'a>(cfg: &'a AlertsConfig, name: &str) -> Result<&'a Schedule, u8> {
    cfg.schedules.get(name).ok_or_else(|| {
        eprintln!(
            "autodial oncall: --schedule: no schedule {:?} in the config",
            agi_callback::escape_bytes(name.as_bytes())
        );
        EXIT_USAGE
    })
}

/// `2026-11-30 10:00 +03:00`: a time as the schedule's people read it.
fn local(s: &Schedule, t: Option<i64>) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    jiff::Timestamp::from_second(t)
        .map(|ts| {
            ts.to_zoned(s.tz.clone())
                .strftime("%Y-%m-%d %H:%M %:z")
                .to_string()
        })
        .unwrap_or_else(|_| "-".into())
}

fn who(contacts: &[String]) -> String {
    if contacts.is_empty() {
        "(nobody)".into()
    } else {
        contacts.join(",")
    }
}

pub fn run(a: OncallArgs) -> u8 {
    let path = a.config.clone().unwrap_or_else(default_path);
    let cfg = match AlertsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autodial oncall: {e}");
            return EXIT_FAILURE;
        }
    };
    match checked(&cfg, &a.cmd) {
        Ok(()) => {}
        Err(code) => return code,
    }
    // WARN lines (nobody on call for a re-planned step) on stderr
    agi_callback::logging::init_stderr(log::LevelFilter::Warn);
    let (pager, _) = match Pager::start(cfg) {
        Ok(p) => p,
        Err(e) => return pager_fail("oncall", e),
    };
    let cfg = pager.config();
    let now = unix_now();
    match a.cmd {
        OncallCmd::Now {
            schedule: only,
            at,
            json,
        } => {
            let mut views: Vec<NowView> = Vec::new();
            for (name, s) in cfg
                .schedules
                .iter()
                .filter(|(n, _)| only.as_ref().is_none_or(|o| o == *n))
            {
                let t = match time_in(s, "--at", at.as_deref(), now) {
                    Ok(t) => t,
                    Err(c) => return c,
                };
                match pager.on_call_now(Some(name), t) {
                    Ok(v) => views.extend(v),
                    Err(e) => return pager_fail("oncall", e),
                }
            }
            if json {
                print_json(&views);
                return 0;
            }
            if views.is_empty() {
                println!("no schedules in the config");
            }
            for v in &views {
                let s = &cfg.schedules[&v.schedule];
                println!(
                    "{}: {} ({}) since {} until {}",
                    v.schedule,
                    who(&v.contacts),
                    v.why.text(),
                    local(s, v.since),
                    local(s, v.until)
                );
            }
            0
        }
        OncallCmd::Shifts {
            schedule: name,
            contact,
            from,
            to,
            days,
            json,
        } => {
            let s = match schedule(&cfg, &name) {
                Ok(s) => s,
                Err(c) => return c,
            };
            let (from, to) = match range(s, from.as_deref(), to.as_deref(), days.unwrap_or(14), now)
            {
                Ok(r) => r,
                Err(c) => return c,
            };
            let v = match pager.shifts(&name, contact.as_deref(), from, to) {
                Ok(v) => v,
                Err(e) => return pager_fail("oncall", e),
            };
            if json {
                print_json(&v);
            } else {
                print_shifts(s, &v);
            }
            0
        }
        OncallCmd::Check { days, from, json } => {
            let mut gaps: Vec<Shift> = Vec::new();
            for name in used(&cfg) {
                let s = &cfg.schedules[&name];
                let f = match time_in(s, "--from", from.as_deref(), now) {
                    Ok(t) => t,
                    Err(c) => return c,
                };
                match pager.shifts(&name, None, f, f + i64::from(days) * 86_400) {
                    Ok(v) => gaps.extend(v.into_iter().filter(|p| p.contacts.is_empty())),
                    Err(e) => return pager_fail("oncall", e),
                }
            }
            if json {
                print_json(&gaps);
            } else if gaps.is_empty() {
                println!("no gaps in the next {days} days");
            } else {
                for g in &gaps {
                    let s = &cfg.schedules[&g.schedule];
                    println!(
                        "{}: nobody on call from {} to {}",
                        g.schedule,
                        local(s, Some(g.from)),
                        local(s, Some(g.to))
                    );
                }
            }
            if gaps.is_empty() {
                0
            } else {
                EXIT_FAILURE
            }
        }
        OncallCmd::Ical { schedule, contact } => {
            match pager.ical(schedule.as_deref(), contact.as_deref(), now) {
                Ok(c) => {
                    print!("{c}");
                    0
                }
                Err(e) => pager_fail("oncall", e),
            }
        }
        OncallCmd::Override(o) => overrides(&pager, &cfg, o, now),
        OncallCmd::Replan { json } => match pager.replan(now) {
            Ok(r) => {
                if json {
                    print_json(&r);
                } else {
                    println!("{} call step(s) re-planned", r.replanned.len());
                    for c in &r.replanned {
                        println!(
                            "  {} round {} step {}: {} -> {}",
                            c.alert_id,
                            c.round,
                            c.step,
                            who(&c.before),
                            who(&c.after)
                        );
                    }
                }
                if r.owed.is_empty() {
                    0
                } else {
                    eprintln!(
                        "autodial oncall: the spool still owes {} (retried by the next command)",
                        r.owed.join(", ")
                    );
                    EXIT_FAILURE
                }
            }
            Err(e) => pager_fail("oncall", e),
        },
    }
}

/// Checks what needs no state (names, times) before anything is opened.
fn checked(cfg: &AlertsConfig, cmd: &OncallCmd) -> Result<(), u8> {
    let name = match cmd {
        OncallCmd::Now {
            schedule: Some(s), ..
        } => s,
        OncallCmd::Shifts { schedule: s, .. } => s,
        OncallCmd::Ical {
            schedule: Some(s), ..
        } => s,
        OncallCmd::Override(OverrideCmd::Add { schedule: s, .. }) => s,
        OncallCmd::Override(OverrideCmd::List {
            schedule: Some(s), ..
        }) => s,
        _ => return Ok(()),
    };
    schedule(cfg, name).map(|_| ())
}

fn used(cfg: &AlertsConfig) -> Vec<String> {
    let mut v: Vec<String> = cfg
        .chains
        .values()
        .flat_map(|c| c.steps.iter())
        .flat_map(|s| s.schedules.iter().cloned())
        .filter(|s| cfg.schedules.contains_key(s))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn range(
    s: &Schedule,
    from: Option<&str>,
    to: Option<&str>,
    days: u32,
    now: i64,
) -> Result<(i64, i64), u8> {
    let f = time_in(s, "--from", from, now)?;
    let t = match to {
        Some(_) => time_in(s, "--to", to, now)?,
        None => f + i64::from(days) * 86_400,
    };
    Ok((f, t))
}

fn print_shifts(s: &Schedule, v: &[Shift]) {
    if v.is_empty() {
        println!("no shifts");
    }
    for p in v {
        println!(
            "{}  {}  {:<16} {}",
            local(s, Some(p.from)),
            local(s, Some(p.to)),
            who(&p.contacts),
            p.why.text()
        );
    }
}

fn overrides(pager: &Pager, cfg: &AlertsConfig, o: OverrideCmd, now: i64) -> u8 {
    match o {
        OverrideCmd::Add {
            schedule: name,
            contact,
            from,
            to,
            json,
        } => {
            let s = match schedule(cfg, &name) {
                Ok(s) => s,
                Err(c) => return c,
            };
            let (f, t) = match (
                time_in(s, "--from", Some(&from), now),
                time_in(s, "--to", Some(&to), now),
            ) {
                (Ok(f), Ok(t)) => (f, t),
                (Err(c), _) | (_, Err(c)) => return c,
            };
            match pager.add_override(&name, &contact, f, t, now) {
                Ok(c) => {
                    if json {
                        print_json(&c);
                    } else {
                        println!("{}", c.override_.id);
                        for r in &c.replanned {
                            eprintln!(
                                "re-planned {} round {} step {}: {} -> {}",
                                r.alert_id,
                                r.round,
                                r.step,
                                who(&r.before),
                                who(&r.after)
                            );
                        }
                    }
                    if c.owed.is_empty() {
                        0
                    } else {
                        EXIT_FAILURE
                    }
                }
                Err(e) => pager_fail("oncall", e),
            }
        }
        OverrideCmd::Remove { id, json } => match pager.remove_override(id, now) {
            Ok(Some(c)) => {
                if json {
                    print_json(&c);
                } else {
                    println!(
                        "removed override {id} ({} on {})",
                        c.override_.contact, c.override_.schedule
                    );
                }
                if c.owed.is_empty() {
                    0
                } else {
                    EXIT_FAILURE
                }
            }
            Ok(None) => {
                eprintln!("autodial oncall: no override {id}");
                EXIT_NOT_FOUND
            }
            Err(e) => pager_fail("oncall", e),
        },
        OverrideCmd::List {
            schedule: name,
            all,
            json,
        } => {
            let after = if all { i64::MIN } else { now };
            match pager.overrides(name.as_deref(), after) {
                Ok(v) => {
                    if json {
                        print_json(&v);
                        return 0;
                    }
                    if v.is_empty() {
                        println!("no overrides");
                    }
                    for o in &v {
                        let s = cfg.schedules.get(&o.schedule);
                        let show = |t| {
                            s.map_or_else(
                                || agi_callback::timefmt::rfc3339(t).unwrap_or_default(),
                                |s| local(s, Some(t)),
                            )
                        };
                        println!(
                            "{:<6} {:<12} {:<12} {}  {}",
                            o.id,
                            o.schedule,
                            o.contact,
                            show(o.from),
                            show(o.to)
                        );
                    }
                    0
                }
                Err(e) => pager_fail("oncall", e),
            }
        }
    }
}
