//! `autodial generate-docs DIR` (hidden): the man pages and shell
//! completions the Debian package installs, generated from the clap
//! definitions (autodial) and the programs' own help texts (callback,
//! alert), so they never drift from `--help`.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

fn agi_page(name: &'static str, about: &'static str, help: &'static str) -> clap::Command {
    clap::Command::new(name)
        .about(about)
        .long_about(help)
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_flag(true)
        .arg(
            clap::Arg::new("args")
                .value_name("AGI_ARGUMENT")
                .num_args(0..)
                .help("the AGI() arguments of the dialplan"),
        )
}

fn man(cmd: clap::Command, section: &str, dir: &Path) -> std::io::Result<()> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .render(&mut out)?;
    fs::write(dir.join(format!("{name}.{section}")), out)
}

/// Writes `DIR/man/{autodial.1, autodial-*.1, callback.8, alert.8}` and
/// `DIR/completions/{autodial.bash, _autodial, autodial.fish}`.
pub fn generate(dir: &Path) -> std::io::Result<()> {
    let mandir = dir.join("man");
    let compdir = dir.join("completions");
    fs::create_dir_all(&mandir)?;
    fs::create_dir_all(&compdir)?;
    let mut cmd = Cli::command();
    cmd.build();
    // the main page lists every subcommand; one page each for their options
    man(cmd.clone(), "1", &mandir)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        let name = format!("autodial-{}", sub.get_name());
        man(
            sub.clone().name(&*Box::leak(name.into_boxed_str())),
            "1",
            &mandir,
        )?;
    }
    man(
        agi_page(
            "callback",
            "Asterisk AGI program that queues a callback for permitted callers",
            agi_callback::callback::HELP,
        ),
        "8",
        &mandir,
    )?;
    man(
        agi_page(
            "alert",
            "Asterisk AGI program of phone alerts: speaks the alert, waits for the ack digit",
            agi_callback::alert::AGI_HELP,
        ),
        "8",
        &mandir,
    )?;
    for (shell, file) in [
        (Shell::Bash, "autodial.bash"),
        (Shell::Zsh, "_autodial"),
        (Shell::Fish, "autodial.fish"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "autodial", &mut out);
        fs::write(compdir.join(file), out)?;
    }
    Ok(())
}
