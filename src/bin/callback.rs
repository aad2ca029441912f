//! `callback`: the AGI program. Reads the AGI environment, decides whether
//! the caller gets a callback, queues the call file, and reports the outcome
//! to the dialplan (`CALLBACK_STATUS`, `CALLBACK_FILE`), to the console
//! (VERBOSE) and to its log.
//!
//! `no_main`: Asterisk starts this program once per call, so start-up is
//! kept lean. The C `main` below skips the Rust runtime's set-up (stack
//! guard probing through /proc/self/maps, the stack-overflow handler),
//! which this program does not need; `std::env::args` still works (glibc
//! hands argv to Rust's initialiser), and stdout is flushed by hand.
#![no_main]

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use agi_callback::agi::startup::{self, Start};
use agi_callback::agi::{Command, FdReader, Lookahead, Session, SessionError, State};
use agi_callback::callback::config::{self, Config};
use agi_callback::callback::{self, Decision, Outcome};
use agi_callback::{escape_bytes, logging};
use log::{debug, info, LevelFilter};

/// The env block and config the demo runs on: a real capture from
/// Asterisk 22.10 (a caller with a UTF-8 name and a +7 number).
const DEMO_ENV: &[u8] = include_bytes!("../../fixtures/asterisk-22.10/env-utf8-name.txt");
const DEMO_CONFIG: &str = include_str!("../../agi-bin/callback-demo.json");

#[unsafe(no_mangle)]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    let code = real_main();
    let _ = io::stdout().flush();
    code
}

fn real_main() -> libc::c_int {
    match startup::begin("callback", callback::HELP, &[("--demo", demo)]) {
        Start::Exit(code) => return code,
        Start::Run => {}
    }
    let stdout = io::stdout().lock();
    let cfg = config::default_path();
    run(
        FdReader::stdin(),
        stdout,
        Config::load(&cfg).map_err(|e| e.to_string()),
    )
}

/// The log: one decision line always, everything with `debug`. Lines are
/// kept in memory until the decision is taken and published; only then is
/// the file attached ([`agi_callback::logging`]), so nothing about the log
/// can delay a callback.
fn start_log(debug: bool) {
    logging::init_file(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

/// One whole AGI run. Generic over the pipe so tests and `--demo` drive the
/// same code as Asterisk does.
fn run<R: Lookahead, W: Write>(reader: R, writer: W, cfg: Result<Config, String>) -> libc::c_int {
    let mut session = Session::new(reader, writer);
    let (log_file, debug_on) = match &cfg {
        Ok(c) => (c.log_file.clone(), c.debug),
        Err(_) => (config::default_log_file(), false),
    };
    start_log(debug_on);
    let env = session
        .read_env()
        .and_then(|env| match env.check_standard() {
            Ok(()) => Ok(env),
            Err(e) => Err(SessionError::Env(e)),
        });
    let env = match env {
        Ok(env) => env,
        Err(e) => {
            // Out of step with Asterisk (or a forged block): say nothing on
            // the pipe.
            info!("- ERROR {e}");
            let _ = logging::attach(&log_file);
            log::logger().flush();
            return 1;
        }
    };
    if debug_on {
        for (k, v) in env.entries() {
            debug!("env {k}: {}", escape_bytes(v));
        }
    }

    let mut decision = match &cfg {
        Ok(cfg) => callback::queue::decide_and_queue(&env, cfg, SystemTime::now, || {
            session.check_nothing_cut().map_err(|e| e.to_string())
        }),
        Err(e) => Decision::error(None, e.clone()),
    };
    if decision.queue.is_none() && session.state() != State::Closed {
        // Nothing was published, so the check did not run yet.
        if let Err(e) = session.check_nothing_cut() {
            decision = Decision::error(decision.number.as_deref(), e.to_string());
        }
    }

    let number = decision.number.as_deref().unwrap_or("-");
    info!("{number} {} {}", decision.outcome, decision.reason);
    // Decided and published: only now the log file is opened.
    let log_problem = logging::attach(&log_file).err();
    if session.state() == State::Closed {
        // The block was cut short: what follows is not Asterisk's reply.
        log::logger().flush();
        return 1;
    }

    // Report to the dialplan. The decision is taken and the file published
    // already; a caller that hung up (511s, EOF, EPIPE) changes nothing.
    let mut commands = vec![Command::set_variable(
        b"CALLBACK_STATUS",
        decision.outcome.as_str().as_bytes(),
    )];
    if let Some(q) = &decision.queue {
        commands.push(Command::set_variable(b"CALLBACK_FILE", q.name.as_bytes()));
    }
    if let Some(p) = &log_problem {
        commands.push(Command::verbose(format!("callback: {p}").as_bytes(), 1));
    }
    commands.push(Command::verbose(
        format!(
            "callback: {number} {}: {}",
            decision.outcome, decision.reason
        )
        .as_bytes(),
        1,
    ));
    for cmd in commands {
        let Ok(cmd) = cmd else { continue };
        let reply = session.send(&cmd);
        if debug_on {
            debug!("> {}", escape_bytes(cmd.as_bytes()));
            match &reply {
                Ok(_) => debug!("< {}", escape_bytes(session.last_raw().trim_ascii_end())),
                Err(e) => debug!("< ({e})"),
            }
        }
        // A 511 (dead channel) is an answer like any other; only a closed
        // pipe ends the conversation.
        if reply.is_err() {
            break;
        }
    }
    log::logger().flush();
    if decision.outcome == Outcome::Error {
        1
    } else {
        0
    }
}

/// A stand-in for Asterisk: answers `200 result=1` to every command and
/// prints the conversation.
struct DemoPeer {
    replies: std::collections::VecDeque<u8>,
    env: io::Cursor<&'static [u8]>,
}

struct DemoReader<'a>(&'a std::cell::RefCell<DemoPeer>);
struct DemoWriter<'a>(&'a std::cell::RefCell<DemoPeer>);

impl Read for DemoReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut p = self.0.borrow_mut();
        let n = p.env.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        let n = buf.len().min(p.replies.len());
        for (slot, b) in buf.iter_mut().zip(p.replies.drain(..n)) {
            *slot = b;
        }
        Ok(n)
    }
}

impl Write for DemoWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut p = self.0.borrow_mut();
        for line in buf.split_inclusive(|&b| b == b'\n') {
            print!("> {}", String::from_utf8_lossy(line));
            if line.ends_with(b"\n") {
                println!("< 200 result=1");
                p.replies.extend(b"200 result=1\n");
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

fn demo() -> libc::c_int {
    let root = PathBuf::from("callback-demo");
    for d in ["spool/outgoing", "spool/tmp"] {
        if let Err(e) = fs::create_dir_all(root.join(d)) {
            eprintln!(
                "callback --demo: cannot create {}: {e}",
                root.join(d).display()
            );
            return 1;
        }
    }
    let cfg = Config::from_json(DEMO_CONFIG.as_bytes()).map_err(|e| format!("demo config: {e}"));
    println!(
        "# env block: fixtures/asterisk-22.10/env-utf8-name.txt (captured from Asterisk 22.10)"
    );
    println!("# config: agi-bin/callback-demo.json; spool and log under ./callback-demo/");
    let peer = std::cell::RefCell::new(DemoPeer {
        replies: Default::default(),
        env: io::Cursor::new(DEMO_ENV),
    });
    let code = run(BufReader::new(DemoReader(&peer)), DemoWriter(&peer), cfg);
    let file = root.join("spool/outgoing/callback-89105647899.call");
    match fs::read_to_string(&file) {
        Ok(text) => println!("# {}:\n{text}", file.display()),
        Err(e) => println!("# {}: {e}", file.display()),
    }
    println!("# run again: the file is pending, so the outcome is DUPLICATE;");
    println!("# remove {} to start over", root.display());
    code
}
