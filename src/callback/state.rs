//! What the callback keeps between calls, in `<spool_dir>/callback-state/`:
//! the lock that makes count, decide and publish one step across every
//! callback process on the spool, the cool-down stamps (one empty file per
//! number, its mtime the time the last callback was queued), and the
//! permit-list index.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::fsio;

/// A state file that could not be used: which, what was being done, and
/// the I/O error.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {source}", .path.display())]
pub struct StateError {
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// The state directory of the callbacks on one spool.
#[derive(Debug, Clone)]
pub struct State {
    dir: PathBuf,
}

/// Held while a process decides and publishes; released on drop.
#[derive(Debug)]
pub struct Lock {
    _file: fs::File,
}

impl State {
    /// `<spool_dir>/callback-state`.
    pub fn for_spool(spool_dir: &Path) -> State {
        State {
            dir: spool_dir.join("callback-state"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the spool's callback lock, creating the directory if needed;
    /// an error (naming the file) when it cannot be had within `timeout`.
    pub fn lock(&self, timeout: Duration) -> Result<Lock, StateError> {
        let path = self.dir.join("lock");
        fs::create_dir_all(&self.dir)
            .and_then(|()| fsio::lock(&path, timeout))
            .map(|file| Lock { _file: file })
            .map_err(|source| StateError {
                what: "cannot lock",
                path,
                source,
            })
    }

    fn stamp(&self, number: &str) -> PathBuf {
        self.dir.join(number)
    }

    /// When a callback for `number` was last queued, never later than
    /// `now`: a stamp from a clock that was once ahead is moved back to
    /// `now` (so the number waits one cool-down, not the clock's error).
    /// A stamp that is not a regular file (a planted symlink or FIFO) is an
    /// error; it is never followed, truncated or waited on.
    pub fn last_queued(
        &self,
        number: &str,
        now: SystemTime,
    ) -> Result<Option<SystemTime>, StateError> {
        let path = self.stamp(number);
        let stamp_err = |source| StateError {
            what: "cool-down stamp",
            path: path.clone(),
            source,
        };
        let (f, meta) = match fsio::open_regular(&path, false) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(stamp_err(e)),
        };
        let at = meta.modified().map_err(stamp_err)?;
        if at > now {
            // Best effort: if it cannot be moved back, this call still
            // counts it as `now`.
            let _ = f.set_modified(now);
            return Ok(Some(now));
        }
        Ok(Some(at))
    }

    /// Records that a callback for `number` was queued at `now`.
    pub fn record_queued(&self, number: &str, now: SystemTime) -> Result<(), StateError> {
        let path = self.stamp(number);
        fs::create_dir_all(&self.dir)
            .and_then(|()| fsio::open_write(&path, fsio::PRIVATE))
            .and_then(|f| f.set_modified(now))
            .map_err(|source| StateError {
                what: "cool-down stamp",
                path,
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_from_the_future_count_as_now_and_are_moved_back() {
        let d = tempfile::tempdir().unwrap();
        let s = State::for_spool(d.path());
        let now = SystemTime::now();
        assert_eq!(s.last_queued("1", now).unwrap(), None);
        let year = Duration::from_secs(365 * 86400);
        s.record_queued("1", now + year).unwrap();
        assert_eq!(s.last_queued("1", now).unwrap(), Some(now));
        let later = now + Duration::from_secs(10);
        assert_eq!(s.last_queued("1", later).unwrap(), Some(now));
    }

    #[test]
    fn planted_links_and_fifos_are_refused_untouched() {
        let d = tempfile::tempdir().unwrap();
        let s = State::for_spool(d.path());
        fs::create_dir_all(s.dir()).unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, s.dir().join("1")).unwrap();
        let now = SystemTime::now();
        let e = s.last_queued("1", now).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = s.record_queued("1", now).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            s.dir().join("2"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let e = s.last_queued("2", now).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
        let e = s.record_queued("2", now).unwrap_err().to_string();
        assert!(e.contains("FIFO"), "{e}");
    }
}
