//! One logging path: the `log` facade everywhere, two sinks.
//!
//! - The AGI programs ([`init_file`], then [`attach`]): one line per record
//!   in a file under `$AST_LOG_DIR`, each line one `write` on an `O_APPEND`
//!   descriptor so lines of concurrent processes never interleave; lines
//!   are kept in memory until the file is attached, and the file is opened
//!   without ever blocking (a FIFO, a socket or a link to one is refused at
//!   once), so nothing about the log can delay a call.
//! - `autodial serve` ([`init_stderr`]): stderr, which journald keeps.
//!
//! Messages carry outside bytes escaped by their authors
//! ([`crate::escape_bytes`]).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

use log::LevelFilter;

/// Most bytes of log kept before the file is open (the env block in debug
/// mode is at most 64 KiB escaped fourfold).
pub const MAX_PENDING_LOG: usize = 512 * 1024;

fn config() -> simplelog::Config {
    let mut b = simplelog::ConfigBuilder::new();
    b.set_time_format_rfc3339()
        .set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off);
    let _ = b.set_time_offset_to_local();
    b.build()
}

/// Starts the AGI programs' file log at `level`: records are kept (up to
/// [`MAX_PENDING_LOG`]) until [`attach`] names the file. A second call
/// (the callback's demo runs twice) keeps the first logger.
pub fn init_file(level: LevelFilter) {
    let _ = simplelog::WriteLogger::init(level, config(), WholeLines::default());
}

/// Starts `autodial serve`'s log on stderr.
pub fn init_stderr(level: LevelFilter) {
    let _ = simplelog::WriteLogger::init(level, config(), io::stderr());
}

/// Opens the log file (appending, never blocking) and writes the lines
/// kept so far. On an error the kept lines are dropped and later ones too;
/// the caller says it once where it can (VERBOSE).
pub fn attach(path: &Path) -> Result<(), String> {
    let opened = crate::fsio::open_write(path, crate::fsio::LOG)
        .map_err(|e| format!("cannot open log file {}: {e}", path.display()));
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    sink.attached = true;
    let pending = std::mem::take(&mut sink.pending);
    let file = opened?;
    if !pending.is_empty() {
        let _ = (&file).write_all(&pending);
    }
    sink.file = Some(file);
    Ok(())
}

/// Writes what the logger buffered.
pub fn flush() {
    log::logger().flush();
}

/// Where whole log lines go: kept until the file is attached, then written.
struct Sink {
    file: Option<File>,
    pending: Vec<u8>,
    attached: bool,
}

static SINK: Mutex<Sink> = Mutex::new(Sink {
    file: None,
    pending: Vec::new(),
    attached: false,
});

fn emit(lines: &[u8]) -> io::Result<()> {
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = &sink.file {
        let mut f: &File = f;
        return f.write_all(lines);
    }
    if !sink.attached && sink.pending.len() + lines.len() <= MAX_PENDING_LOG {
        sink.pending.extend_from_slice(lines);
    }
    Ok(())
}

/// Hands on complete lines only, each in one `write` (the logger writes a
/// line in several pieces).
#[derive(Default)]
struct WholeLines {
    buf: Vec<u8>,
}

impl Write for WholeLines {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if let Some(end) = self.buf.iter().rposition(|&b| b == b'\n') {
            let res = emit(&self.buf[..=end]);
            self.buf.drain(..=end);
            res?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let res = emit(&self.buf);
            self.buf.clear();
            res?;
        }
        Ok(())
    }
}
