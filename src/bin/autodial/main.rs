//! `autodial`: make Asterisk place a call now or later by queueing a call
//! file; check, list and cancel call files; raise and manage phone alerts.

mod alert;
mod docs;
mod heartbeat;
mod oncall;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use agi_callback::callfile::{parse, Action, CallFile, CallerId, PublishError, Spool, SpoolError};
use agi_callback::escape_bytes;
use agi_callback::schedule::{check_range, parse_at, parse_duration, Resolved};
use chrono::{DateTime, FixedOffset, Local};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::os::unix::ffi::OsStrExt;

/// Exit statuses, the same for every command.
pub(crate) const EXIT_FAILURE: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_DUPLICATE: u8 = 3;
pub(crate) const EXIT_NOT_FOUND: u8 = 4;
/// Largest file `check` reads (Asterisk reads any size; a call file is a
/// few hundred bytes).
const MAX_CHECK: u64 = 16 << 20;

const AFTER_HELP: &str = "\
Exit status: 0 done; 1 I/O or other failure (check: a file with an error);
2 invalid arguments or values (nothing written); 3 duplicate (a pending file
of that name exists; nothing changed); 4 not found (cancel).";

#[derive(Parser, Debug)]
#[command(
    name = "autodial",
    version,
    about = "Queue, schedule, check, list and cancel Asterisk call files; raise phone alerts and receive their webhooks",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Asterisk spool directory (holds outgoing/ and tmp/)
    #[arg(
        long,
        global = true,
        env = "AST_SPOOL_DIR",
        default_value = "/var/spool/asterisk",
        value_name = "DIR"
    )]
    spool_dir: PathBuf,

    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Queue a call: Asterisk dials CHANNEL and, once answered, continues in
    /// CONTEXT (or runs APPLICATION)
    #[command(after_help = AFTER_HELP)]
    Call(Box<CallArgs>),
    /// Check call files the way Asterisk will read them; line numbers in
    /// every message
    #[command(after_help = AFTER_HELP)]
    Check {
        /// Call files to check
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// List pending call files: name, schedule, channel, destination,
    /// attempts made
    #[command(after_help = AFTER_HELP)]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Phone alerts: speak the alert, wait for the ack digit, call the next
    /// person until someone acknowledges
    #[command(after_help = alert::AFTER_HELP)]
    Alert(alert::AlertArgs),
    /// On-call schedules: who is on call, shifts, gaps, calendar feeds,
    /// overrides
    #[command(after_help = oncall::AFTER_HELP)]
    Oncall(oncall::OncallArgs),
    /// Heartbeats: a phone call when the monitoring itself goes silent
    /// (ping, list, pause, resume)
    #[command(after_help = heartbeat::AFTER_HELP)]
    Heartbeat(heartbeat::HeartbeatArgs),
    /// Receive webhooks (Alertmanager, Grafana, scripts) and page people
    /// by phone: a long-running HTTP/1.1 service
    #[command(after_help = SERVE_HELP)]
    Serve(ServeArgs),
    /// Write the man pages and shell completions into DIR (for packaging)
    #[command(hide = true)]
    GenerateDocs {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Remove pending call files from outgoing/
    #[command(after_help = AFTER_HELP)]
    Cancel {
        /// File names in outgoing/ (no paths)
        #[arg(required = true, value_name = "NAME")]
        names: Vec<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

const SERVE_HELP: &str = "\
Endpoints: POST /alertmanager (webhook version 4), POST /grafana, POST
/alerts (generic: {\"id\", \"text\", \"chain\", \"labels\", \"status\"}), GET /alerts,
GET /alerts/{id}, POST /alerts/{id}/ack, GET /healthz, GET /metrics.

On call: GET /oncall, GET /oncall/{schedule}/shifts?from&to&contact,
Heartbeats: POST /heartbeats/{name} (a ping; any body), GET /heartbeats,
GET /heartbeats/{name}.

GET /oncall/overrides, POST /oncall/{schedule}/overrides
({\"contact\", \"from\", \"to\"}), DELETE /oncall/overrides/{id}, and the
iCalendar feeds GET /oncall/{schedule}.ics and /oncall/contacts/{name}.ics
(the token may be given as ?token= for calendar apps).

A 2xx means the alert is stored and its call files are queued. SIGTERM:
stop accepting, finish requests in flight (10 s at most), exit 0. SIGHUP
(systemctl reload): read the config again (a bad one is refused, one log
line, the old one stays) and re-plan the calls to come.
Exit status: 0 after SIGTERM; 1 failure (config, database, address);
2 invalid arguments (a non-loopback address without a token).";

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address and port to listen on
    #[arg(long, default_value = "127.0.0.1:9095", value_name = "ADDR:PORT")]
    listen: std::net::SocketAddr,
    /// alerts.json [default: $AUTODIAL_ALERTS, else $AST_CONFIG_DIR/alerts.json]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A file holding the bearer token every request but GET /healthz must
    /// send (Authorization: Bearer <token>)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Listen on a non-loopback address without a token (not recommended)
    #[arg(long)]
    insecure_no_auth: bool,
}

fn serve(a: ServeArgs) -> u8 {
    let token = match &a.token_file {
        Some(p) => match agi_callback::fsio::open_regular(p, true).and_then(|(mut f, _)| {
            let mut s = String::new();
            f.by_ref().take(4097).read_to_string(&mut s)?;
            Ok(s)
        }) {
            Ok(t) => {
                let t = t.trim_end_matches(['\n', '\r']).to_string();
                if t.is_empty() || t.len() > 4096 || t.contains(char::is_whitespace) {
                    return usage(format!(
                        "--token-file {}: one token of 1-4096 characters without blanks",
                        p.display()
                    ));
                }
                Some(t.into_bytes())
            }
            Err(e) => {
                eprintln!("autodial serve: --token-file {}: {e}", p.display());
                return EXIT_FAILURE;
            }
        },
        None => None,
    };
    if token.is_none() && !a.listen.ip().is_loopback() && !a.insecure_no_auth {
        return usage(format!(
            "refusing to listen on {} without --token-file (add --insecure-no-auth to do it anyway)",
            a.listen
        ));
    }
    let path = a
        .config
        .clone()
        .unwrap_or_else(agi_callback::alert::config::default_path);
    let cfg = match agi_callback::alert::config::AlertsConfig::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("autodial serve: {e}");
            return EXIT_FAILURE;
        }
    };
    // From here on the log (stderr: journald) says what happens.
    agi_callback::logging::init_stderr(log::LevelFilter::Info);
    let (pager, finished) = match agi_callback::alert::pager::Pager::start(cfg) {
        Ok(p) => p,
        Err(e) => {
            log::error!("{}", agi_callback::error_chain(&e));
            return EXIT_FAILURE;
        }
    };
    if finished.done > 0 {
        log::info!(
            "settled what the spool owed {} alert(s) from earlier attempts",
            finished.done
        );
    }
    for e in &finished.failed {
        log::warn!(
            "still owed (retried every few seconds): {}",
            agi_callback::error_chain(e)
        );
    }
    match agi_callback::receiver::server::serve(agi_callback::receiver::server::Options {
        listen: a.listen,
        token,
        pager,
        config_path: path,
    }) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            EXIT_FAILURE
        }
    }
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["context", "application"]))]
struct CallArgs {
    /// Channel to dial, Tech/Dest (e.g. PJSIP/89161112233@sip-provider,
    /// Local/1@autocaller)
    #[arg(long, value_name = "TECH/DEST")]
    channel: String,
    /// Dialplan context for the answered call
    #[arg(long, value_name = "CTX")]
    context: Option<String>,
    /// Extension in CONTEXT [default: s]
    #[arg(long, value_name = "EXT")]
    extension: Option<String>,
    /// Priority in CONTEXT [default: 1]
    #[arg(long, value_name = "N")]
    priority: Option<u32>,
    /// Application to run on the answered call (instead of --context)
    #[arg(long, value_name = "APP")]
    application: Option<String>,
    /// Arguments of APPLICATION
    #[arg(long, value_name = "DATA")]
    data: Option<String>,
    /// Caller ID shown to the called party: '"Name" <number>' or a number
    #[arg(long, value_name = "CID")]
    callerid: Option<String>,
    /// Retries after the first attempt (Asterisk default 0)
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,
    /// Seconds between attempts (Asterisk default 300)
    #[arg(long, value_name = "SECS")]
    retry_time: Option<u32>,
    /// Seconds to ring before giving up (Asterisk default 45)
    #[arg(long, value_name = "SECS")]
    wait_time: Option<u32>,
    /// Account code for the CDR
    #[arg(long, value_name = "ACC")]
    account: Option<String>,
    /// Channel variable NAME=VALUE; repeatable, order kept
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Keep the finished file in outgoing_done/ with its status
    #[arg(long)]
    archive: bool,
    /// When to call: RFC 3339 (2010-07-09T19:18:55+04:00), 'YYYY-MM-DD
    /// HH:MM[:SS]' local time, or touch -t form [[CC]YY]MMDDhhmm[.ss]
    #[arg(long, value_name = "TIME", conflicts_with = "in_")]
    at: Option<String>,
    /// When to call, from now: 90s, 10m, 2h, 1h30m
    #[arg(long = "in", id = "in_", value_name = "DURATION")]
    in_: Option<String>,
    /// Accept an --at time in the past (Asterisk then calls at once)
    #[arg(long)]
    allow_past: bool,
    /// File name in outgoing/ (letters, digits, '-', '_', '.'; not starting
    /// with '.'). A name already pending is a duplicate (exit 3), which makes
    /// it a de-duplication key for monitoring retries. Default: a unique one
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Print the call file, write nothing
    #[arg(long)]
    dry_run: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let spool = Spool::new(&cli.spool_dir);
    // As root, act as the spool's owner (Asterisk's user) before touching
    // it: that user can replace outgoing/ with a symlink to anywhere.
    if matches!(
        cli.command,
        Cmd::Call(_) | Cmd::List { .. } | Cmd::Cancel { .. }
    ) {
        if let Err(e) = agi_callback::fsio::become_owner_of(&cli.spool_dir) {
            eprintln!(
                "autodial: cannot act as the owner of {}: {e}",
                cli.spool_dir.display()
            );
            return ExitCode::from(EXIT_FAILURE);
        }
        // Staging files of ours that a killed run left behind (the callback
        // and the pager do the same).
        spool.clean_stale_staging(agi_callback::callfile::spool::STALE_STAGING);
    }
    let code = match cli.command {
        Cmd::Call(args) => call(&spool, *args),
        Cmd::Check { files } => check(&files),
        Cmd::List { json } => list(&spool, json),
        Cmd::Cancel { names, json } => cancel(&spool, &names, json),
        Cmd::Alert(a) => alert::run(a),
        Cmd::Oncall(a) => oncall::run(a),
        Cmd::Heartbeat(a) => heartbeat::run(a),
        Cmd::Serve(a) => serve(a),
        Cmd::GenerateDocs { dir } => match docs::generate(&dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("autodial generate-docs: {}: {e}", dir.display());
                EXIT_FAILURE
            }
        },
    };
    ExitCode::from(code)
}

/// The one mapping of pager errors to exit statuses for `autodial CMD`
/// (`alert`, `oncall`, `heartbeat`); the error is printed once, with its
/// chain: 4 for a name the config does not have, 2 for bad input, else 1.
pub(crate) fn pager_fail(cmd: &str, e: agi_callback::alert::pager::PagerError) -> u8 {
    use agi_callback::alert::pager::PagerError;
    eprintln!("autodial {cmd}: {}", agi_callback::error_chain(&e));
    match e {
        PagerError::NotFound { .. } => EXIT_NOT_FOUND,
        e if e.is_input() => EXIT_USAGE,
        _ => EXIT_FAILURE,
    }
}

/// Prints `v` as one line of JSON (`--json`).
pub(crate) fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string(v).unwrap_or_default());
}

/// Unix seconds as RFC 3339 UTC, `-` for none.
pub(crate) fn shown(t: Option<i64>) -> String {
    t.and_then(agi_callback::alert::rfc3339)
        .unwrap_or_else(|| "-".into())
}

fn usage(msg: impl std::fmt::Display) -> u8 {
    eprintln!("autodial: {msg}");
    EXIT_USAGE
}

/// `--name`: ASCII letters, digits, `-`, `_`, `.`, not starting with `.`.
fn valid_cli_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 200
        && !n.starts_with('.')
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn generated_name(now: DateTime<Local>) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "autodial-{}-{}-{nanos:09}.call",
        now.format("%Y%m%d-%H%M%S"),
        std::process::id()
    )
}

/// Which command-line option writes each call-file field, for messages.
fn option_for(field: &str) -> &'static str {
    match field {
        "Channel" => "--channel",
        "Callerid" => "--callerid",
        "MaxRetries" => "--max-retries",
        "RetryTime" => "--retry-time",
        "WaitTime" => "--wait-time",
        "Account" => "--account",
        "Context" => "--context",
        "Extension" => "--extension",
        "Priority" => "--priority",
        "Application" => "--application",
        "Data" => "--data",
        "Set" => "--set",
        _ => "a value",
    }
}

fn human(secs: i64) -> String {
    let a = secs.unsigned_abs();
    let (d, h, m, s) = (a / 86400, a / 3600 % 24, a / 60 % 60, a % 60);
    let body = if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    };
    if secs > 0 {
        format!("in {body}")
    } else if secs == 0 {
        "now".into()
    } else {
        format!("{body} ago")
    }
}

fn call(spool: &Spool, a: CallArgs) -> u8 {
    let now = Local::now();
    let when: Resolved = if let Some(at) = &a.at {
        match parse_at(at, &Local, now) {
            Ok(r) => r,
            Err(e) => return usage(e),
        }
    } else if let Some(d) = &a.in_ {
        let later = parse_duration(d).and_then(|d| {
            i64::try_from(d.as_secs())
                .ok()
                .and_then(chrono::Duration::try_seconds)
                .and_then(|d| now.checked_add_signed(d))
                .ok_or_else(|| format!("--in {d:?}: out of range"))
        });
        match later {
            Ok(t) => Resolved {
                at: t.fixed_offset(),
                note: None,
            },
            Err(e) => return usage(e),
        }
    } else {
        Resolved {
            at: now.fixed_offset(),
            note: None,
        }
    };
    if let Err(e) = check_range(&when.at, &now) {
        return usage(format!("--at {}: {e}", a.at.as_deref().unwrap_or_default()));
    }
    if a.at.is_some() && !a.allow_past && when.at.timestamp() < now.timestamp() {
        return usage(format!(
            "--at {} is in the past; add --allow-past to call at once",
            when.at
        ));
    }
    if let Some(note) = &when.note {
        eprintln!("autodial: note: {note}");
    }
    let name = match &a.name {
        Some(n) if valid_cli_name(n) => n.clone(),
        Some(n) => {
            return usage(format!(
                "--name {n:?}: use ASCII letters, digits, '-', '_', '.', not starting with '.'"
            ))
        }
        None => generated_name(now),
    };
    // (clap's `requires` does not see through the required group, so these
    // are checked here.)
    if a.context.is_none() && (a.extension.is_some() || a.priority.is_some()) {
        return usage("--extension and --priority go with --context");
    }
    if a.application.is_none() && a.data.is_some() {
        return usage("--data goes with --application");
    }
    let action = match (&a.context, &a.application) {
        (Some(ctx), None) => Action::Extension {
            context: ctx.clone(),
            extension: a.extension.clone().unwrap_or_else(|| "s".into()),
            priority: Some(a.priority.unwrap_or(1)),
        },
        (None, Some(app)) => Action::Application {
            application: app.clone(),
            data: a.data.clone(),
        },
        // clap's "action" group makes exactly one of them present.
        _ => return usage("give exactly one of --context and --application"),
    };
    let mut cf = CallFile::new(a.channel.clone(), action);
    cf.callerid = a.callerid.as_deref().map(CallerId::parse);
    cf.max_retries = a.max_retries;
    cf.retry_time = a.retry_time;
    cf.wait_time = a.wait_time;
    cf.account = a.account.clone();
    cf.archive = a.archive.then_some(true);
    for s in &a.set {
        match s.split_once('=') {
            Some((k, v)) => cf.variables.push((k.to_string(), v.to_string())),
            None => return usage(format!("--set {s:?}: expected NAME=VALUE")),
        }
    }
    let text = match cf.render() {
        Ok(t) => t,
        Err(e) => {
            return usage(format!(
                "{} ({}): value {}",
                option_for(&e.field),
                e.field,
                e.problem
            ))
        }
    };
    let at_local = when.at.with_timezone(&Local);
    let rel = human(when.at.timestamp() - now.timestamp());
    if a.dry_run {
        if a.json {
            println!(
                "{}",
                json!({"status": "dry-run", "name": name, "scheduled": when.at.to_rfc3339(),
                       "unix": when.at.timestamp(), "callfile": text})
            );
        } else {
            println!(
                "; {name}, scheduled {} ({rel})",
                at_local.format("%Y-%m-%d %H:%M:%S %:z")
            );
            print!("{text}");
        }
        return 0;
    }
    let at = SystemTime::from(when.at);
    match spool.publish(&name, text.as_bytes(), at) {
        Ok(path) => {
            if a.json {
                println!(
                    "{}",
                    json!({"status": "queued", "name": name, "path": path,
                           "scheduled": when.at.to_rfc3339(), "unix": when.at.timestamp()})
                );
            } else {
                println!(
                    "queued {} for {} ({rel})",
                    path.display(),
                    at_local.format("%Y-%m-%d %H:%M:%S %:z")
                );
            }
            0
        }
        Err(PublishError::AlreadyPending(path)) => {
            if a.json {
                println!(
                    "{}",
                    json!({"status": "duplicate", "name": name, "path": path})
                );
            }
            eprintln!(
                "autodial: {} is already pending; nothing changed",
                path.display()
            );
            EXIT_DUPLICATE
        }
        Err(e) => {
            eprintln!("autodial: {e}");
            EXIT_FAILURE
        }
    }
}

fn check(files: &[PathBuf]) -> u8 {
    let mut code = 0;
    for f in files {
        let mut buf = Vec::new();
        // A whole regular file, never a FIFO or device (which could block).
        let read = agi_callback::fsio::open_regular(f, true).and_then(|(h, _)| {
            h.take(MAX_CHECK + 1).read_to_end(&mut buf)?;
            if buf.len() as u64 > MAX_CHECK {
                return Err(std::io::Error::other(format!(
                    "larger than {} MiB; not a call file",
                    MAX_CHECK >> 20
                )));
            }
            Ok(())
        });
        if let Err(e) = read {
            eprintln!("{}: error: cannot read: {e}", f.display());
            code = EXIT_FAILURE;
            continue;
        }
        let parsed = parse(&buf);
        for d in &parsed.diagnostics {
            println!("{}:{d}", f.display());
        }
        if parsed.has_errors() {
            code = EXIT_FAILURE;
        } else if parsed.diagnostics.is_empty() {
            println!("{}: ok", f.display());
        }
    }
    code
}

fn destination(a: &Action) -> String {
    match a {
        Action::Extension {
            context,
            extension,
            priority,
        } => format!("{extension}@{context}:{}", priority.unwrap_or(1)),
        Action::Application { application, data } => match data {
            Some(d) => format!("{application}({d})"),
            None => application.clone(),
        },
    }
}

fn list(spool: &Spool, as_json: bool) -> u8 {
    let pending = match spool.pending() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("autodial: {e}");
            return EXIT_FAILURE;
        }
    };
    let now = SystemTime::now();
    let rows: Vec<Row> = pending.iter().map(|p| Row::new(p, now)).collect();
    if as_json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"name": r.name, "path": escape_bytes(r.p.path.as_os_str().as_bytes()),
                       "scheduled": r.at.map(|t| t.to_rfc3339()), "unix": r.unix,
                       "in_seconds": r.rel, "channel": r.channel,
                       "destination": r.destination, "attempts": r.attempts,
                       "in_progress": r.p.parsed.as_ref().is_some_and(|x| x.in_progress),
                       "valid": r.p.parsed.as_ref().is_some_and(|x| x.call.is_some())})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return 0;
    }
    if rows.is_empty() {
        println!("no call files pending in {}", spool.outgoing().display());
        return 0;
    }
    println!(
        "{:<36} {:<25} {:<10} {:<32} {:<28} ATTEMPTS",
        "NAME", "SCHEDULED", "WHEN", "CHANNEL", "DESTINATION"
    );
    for r in rows {
        let when = if r.rel <= 0 && r.p.parsed.as_ref().is_some_and(|x| x.in_progress) {
            "calling".to_string()
        } else {
            human(r.rel)
        };
        let scheduled = match r.at {
            Some(at) => at.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
            // outside the calendar: the raw mtime, as `touch -d @N` takes it
            None => format!("@{}", r.unix),
        };
        println!(
            "{:<36} {:<25} {:<10} {:<32} {:<28} {}",
            r.name,
            scheduled,
            when,
            r.channel.as_deref().unwrap_or("(invalid)"),
            r.destination.as_deref().unwrap_or("(invalid)"),
            r.attempts
        );
    }
    0
}

/// One pending file as `list` shows it: every text escaped (a file name or
/// a Channel may hold line feeds or terminal escape sequences), the time
/// `None` when the mtime is outside the calendar.
struct Row<'a> {
    p: &'a agi_callback::callfile::Pending,
    name: String,
    unix: i64,
    at: Option<DateTime<FixedOffset>>,
    rel: i64,
    channel: Option<String>,
    destination: Option<String>,
    attempts: u32,
}

impl<'a> Row<'a> {
    fn new(p: &'a agi_callback::callfile::Pending, now: SystemTime) -> Row<'a> {
        let unix = secs_since_epoch(p.scheduled);
        let at = DateTime::from_timestamp(unix, 0).map(|t| t.with_timezone(&Local).fixed_offset());
        let rel = unix.saturating_sub(secs_since_epoch(now));
        let call = p.parsed.as_ref().and_then(|x| x.call.as_ref());
        Row {
            p,
            name: escape_bytes(p.name.as_bytes()),
            unix,
            at,
            rel,
            channel: call.map(|c| escape_bytes(c.channel.as_bytes())),
            destination: call.map(|c| escape_bytes(destination(&c.action).as_bytes())),
            attempts: p.parsed.as_ref().map_or(0, |x| x.attempts),
        }
    }
}

/// Seconds from the epoch, saturating (a file's mtime can be anything).
fn secs_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn cancel(spool: &Spool, names: &[String], as_json: bool) -> u8 {
    if let Some(bad) = names
        .iter()
        .find(|n| !agi_callback::callfile::spool::valid_name(n))
    {
        return usage(format!(
            "{bad:?} is not a file name in outgoing/ (no '/', no leading '.')"
        ));
    }
    let mut code = 0;
    let mut results = Vec::new();
    for n in names {
        match spool.cancel(n) {
            Ok(path) => {
                if !as_json {
                    println!("cancelled {}", path.display());
                }
                results.push(json!({"name": n, "status": "cancelled"}));
            }
            Err(SpoolError::NotFound(path)) => {
                eprintln!("autodial: {} is not pending", path.display());
                results.push(json!({"name": n, "status": "not-found"}));
                if code == 0 {
                    code = EXIT_NOT_FOUND;
                }
            }
            Err(e) => {
                eprintln!("autodial: {e}");
                results.push(json!({"name": n, "status": "error", "error": e.to_string()}));
                code = EXIT_FAILURE;
            }
        }
    }
    if as_json {
        println!("{}", serde_json::Value::Array(results));
    }
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_times() {
        assert_eq!(human(240), "in 4m0s");
        assert_eq!(human(-90), "1m30s ago");
        assert_eq!(human(5400), "in 1h30m");
        assert_eq!(human(0), "now");
    }
}
