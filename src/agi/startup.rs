//! The start-up every AGI program of ours shares: signals, "am I run by
//! Asterisk", and the few flags a person may give by hand.

/// What to do after [`begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Run the AGI conversation on stdin/stdout.
    Run,
    /// A flag was handled by hand: exit with this status.
    Exit(i32),
}

/// A flag run by hand (`--demo`) and what it runs (its exit status).
pub type Flag<'a> = (&'a str, fn() -> i32);

/// Run by Asterisk? res_agi sets `AST_AGI_DIR` and `AST_CONFIG_FILE` for
/// every AGI; then every argument is an AGI argument (`AGI(callback,--demo)`
/// must not run the demo or print help onto the AGI pipe).
pub fn run_by_asterisk() -> bool {
    ["AST_AGI_DIR", "AST_CONFIG_FILE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Ignores SIGHUP and SIGPIPE (a caller hanging up sends SIGHUP, a closed
/// pipe SIGPIPE: neither may kill us before what is known is recorded; we
/// see 511 or EPIPE instead). Then, run by hand with one argument,
/// `--help`/`-h` prints `help`, `--version`/`-V` the version, and an
/// `extra` flag runs its function.
pub fn begin(name: &str, help: &str, extra: &[Flag]) -> Start {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions
    // (no safe wrapper exists for a process-wide disposition).
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    if run_by_asterisk() {
        return Start::Run;
    }
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [one] = args.as_slice() else {
        return Start::Run;
    };
    match one.to_str() {
        Some("--help") | Some("-h") => {
            print!("{help}");
            Start::Exit(0)
        }
        Some("--version") | Some("-V") => {
            println!("{name} {}", env!("CARGO_PKG_VERSION"));
            Start::Exit(0)
        }
        Some(flag) => extra
            .iter()
            .find(|(f, _)| *f == flag)
            .map_or(Start::Run, |(_, run)| Start::Exit(run())),
        None => Start::Run,
    }
}
