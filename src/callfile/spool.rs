//! The spool: stage a call file next to `outgoing/`, make it complete and
//! durable, give it its schedule, then publish it without ever replacing a
//! pending call.
//!
//! Asterisk reads a file's mtime once, when the file appears in
//! `outgoing/`, and takes a file written in place at its first close
//! (possibly half-written). So the file is written in `<root>/tmp` (the
//! same filesystem), fsynced, given its mode and mtime, and only then
//! renamed into `outgoing/` with `RENAME_NOREPLACE` (or `link` + `unlink`
//! where the filesystem lacks it).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;
use rustix::fs::{Access, AtFlags, Mode, OFlags, RenameFlags};

use super::model::{CallFile, RenderError};
use super::parse::{parse, Parsed};

/// Staging files of ours older than this were left by a killed process:
/// every command that uses the spool removes them.
pub const STALE_STAGING: Duration = Duration::from_secs(60);

/// Staging files of ours start with this; nothing else in `tmp/` is touched.
pub const STAGE_PREFIX: &str = "agi-callback-stage.";
/// Largest file `pending()` reads; larger ones are listed unparsed.
const MAX_READ: u64 = 1 << 20;
/// Default mode of published files (Asterisk's user reads and writes them).
pub const DEFAULT_MODE: u32 = 0o640;

/// A spool directory: `<root>/outgoing` and its staging dir `<root>/tmp`.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    mode: u32,
}

/// Why a publish did not happen. In every case nothing was left in
/// `outgoing/` and the staging file, if any, was removed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file of that name is pending (or its call in progress).
    #[error("{} is already pending", .0.display())]
    AlreadyPending(PathBuf),
    /// The name is not a plain file name.
    #[error(
        "bad call file name {0:?}: use letters, digits, '.', '_', '-', '+', not starting with '.'"
    )]
    BadName(String),
    /// The staging dir and `outgoing/` are on different filesystems, so the
    /// file could not be moved in atomically with its schedule.
    #[error("{} and {} are on different filesystems; a call file cannot be moved in atomically with its schedule", staging.display(), outgoing.display())]
    CrossDevice { staging: PathBuf, outgoing: PathBuf },
    /// The call file could not be rendered.
    #[error(transparent)]
    Render(RenderError),
    /// An I/O step failed.
    #[error("cannot {op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
}

/// Why listing or cancelling failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("bad call file name {0:?}")]
    BadName(String),
    #[error("{} is not pending", .0.display())]
    NotFound(PathBuf),
    #[error("cannot {op} {}: {err}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        err: io::Error,
    },
}

/// A file waiting in `outgoing/`.
#[derive(Debug, Clone)]
pub struct Pending {
    pub name: String,
    pub path: PathBuf,
    /// The mtime: when Asterisk places (or retries) the call.
    pub scheduled: SystemTime,
    /// The content as Asterisk reads it; `None` when unreadable or too large.
    pub parsed: Option<Parsed>,
}

/// True for a plain file name: ASCII letters, digits, `.`, `_`, `-`, `+`,
/// not starting with `.`, at most 200 bytes. No path can be formed from it.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PublishError + 'a {
    move |err| PublishError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// Opens a spool directory without following a symbolic link: whoever owns
/// the spool (Asterisk's user) could otherwise point `outgoing/` anywhere,
/// and a root `autodial` would write there.
fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW|O_DIRECTORY on a link fails with ENOTDIR (or ELOOP)
            Some(libc::ELOOP) | Some(libc::ENOTDIR)
                if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "is a symbolic link, which is not followed",
                )
            }
            _ => e,
        })
}

/// Does `name` exist in the directory `dir` (a symlink counts, unfollowed)?
fn exists_at(dir: &File, name: &str) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
}

fn unlink_at(dir: &File, name: &str) {
    let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
}

/// Creates `name` in `dir` exclusively (`O_EXCL|O_NOFOLLOW`: never an
/// existing entry, never through a planted symlink), mode 0600.
fn create_at(dir: &File, name: &str) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// Moves `from` (in `fdir`) to `to` (in `tdir`) unless `to` exists.
/// `Ok(false)` when it exists.
fn rename_noreplace(fdir: &File, from: &str, tdir: &File, to: &str) -> io::Result<bool> {
    use rustix::io::Errno;
    match rustix::fs::renameat_with(fdir, from, tdir, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(true),
        Err(Errno::EXIST) => Ok(false),
        // The filesystem (or kernel) lacks RENAME_NOREPLACE: link() fails
        // with EEXIST too, and never replaces.
        Err(Errno::INVAL) | Err(Errno::NOSYS) | Err(Errno::OPNOTSUPP) => {
            match rustix::fs::linkat(fdir, from, tdir, to, AtFlags::empty()) {
                Ok(()) => {
                    unlink_at(fdir, from);
                    Ok(true)
                }
                Err(Errno::EXIST) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

fn stage_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{STAGE_PREFIX}{nanos}.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The creation time written into a staging file's name.
fn stage_created(name: &str) -> Option<SystemTime> {
    let nanos: u64 = name
        .strip_prefix(STAGE_PREFIX)?
        .split('.')
        .next()?
        .parse()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_nanos(nanos))
}

impl Spool {
    /// A spool rooted at `root` (the directory that holds `outgoing/`).
    pub fn new(root: impl Into<PathBuf>) -> Spool {
        Spool {
            root: root.into(),
            mode: DEFAULT_MODE,
        }
    }

    /// The mode published files get (default 0640).
    pub fn with_mode(mut self, mode: u32) -> Spool {
        self.mode = mode & 0o7777;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/outgoing`, the directory Asterisk watches.
    pub fn outgoing(&self) -> PathBuf {
        self.root.join("outgoing")
    }

    /// `<root>/tmp`, where files are staged.
    pub fn staging(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Renders `call` and publishes it as `name`, scheduled at `at`.
    pub fn publish_call(
        &self,
        name: &str,
        call: &CallFile,
        at: SystemTime,
    ) -> Result<PathBuf, PublishError> {
        let text = call.render().map_err(PublishError::Render)?;
        self.publish(name, text.as_bytes(), at)
    }

    /// [`Spool::publish_call`] with the schedule as a `chrono` time in any
    /// time zone.
    pub fn publish_call_at<Tz: chrono::TimeZone>(
        &self,
        name: &str,
        call: &CallFile,
        at: &chrono::DateTime<Tz>,
    ) -> Result<PathBuf, PublishError> {
        self.publish_call(name, call, SystemTime::from(at.with_timezone(&chrono::Utc)))
    }

    /// Publishes `contents` as `outgoing/<name>` with mtime `at`, unless a
    /// file of that name is pending ([`PublishError::AlreadyPending`]).
    pub fn publish(
        &self,
        name: &str,
        contents: &[u8],
        at: SystemTime,
    ) -> Result<PathBuf, PublishError> {
        if !valid_name(name) {
            return Err(PublishError::BadName(name.to_string()));
        }
        let staging = self.staging();
        let outgoing = self.outgoing();
        let sdir = open_dir(&staging).map_err(io_err("use staging directory", &staging))?;
        let odir = open_dir(&outgoing).map_err(io_err("use spool directory", &outgoing))?;
        let sdev = sdir
            .metadata()
            .map_err(io_err("use staging directory", &staging))?;
        let odev = odir
            .metadata()
            .map_err(io_err("use spool directory", &outgoing))?;
        if sdev.dev() != odev.dev() {
            return Err(PublishError::CrossDevice { staging, outgoing });
        }
        let target = outgoing.join(name);
        // Cheap early answer; the rename below is what decides.
        if exists_at(&odir, name) {
            return Err(PublishError::AlreadyPending(target));
        }
        let stage = stage_name();
        let staged = staging.join(&stage);
        let result = self
            .write_staged(&sdir, &stage, &staged, contents, at, &odev)
            .and_then(|()| match rename_noreplace(&sdir, &stage, &odir, name) {
                Ok(true) => Ok(()),
                Ok(false) => Err(PublishError::AlreadyPending(target.clone())),
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => Err(PublishError::CrossDevice {
                    staging: staging.clone(),
                    outgoing: outgoing.clone(),
                }),
                Err(e) => Err(io_err("publish into", &outgoing)(e)),
            });
        match result {
            Ok(()) => {
                // Make the new directory entry durable; the call is already
                // queued, so a failure here is not worth undoing it for.
                let _ = odir.sync_all();
                Ok(target)
            }
            Err(e) => {
                unlink_at(&sdir, &stage);
                Err(e)
            }
        }
    }

    fn write_staged(
        &self,
        sdir: &File,
        stage: &str,
        staged: &Path,
        contents: &[u8],
        at: SystemTime,
        outgoing_meta: &fs::Metadata,
    ) -> Result<(), PublishError> {
        let mut f = create_at(sdir, stage).map_err(io_err("create staging file", staged))?;
        f.write_all(contents)
            .map_err(io_err("write staging file", staged))?;
        // Run as root (an operator's autodial on a spool that root owns),
        // hand the file to the owner of outgoing/ (Asterisk's user), who
        // must be able to update it.
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::fchown(&f, Some(outgoing_meta.uid()), Some(outgoing_meta.gid()))
                .map_err(io_err("chown staging file", staged))?;
        }
        f.set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(io_err("chmod staging file", staged))?;
        let t = FileTime::from_system_time(at);
        filetime::set_file_handle_times(&f, Some(t), Some(t))
            .map_err(io_err("set the schedule (mtime) of", staged))?;
        f.sync_all().map_err(io_err("fsync staging file", staged))?;
        Ok(())
    }

    /// `Ok` when `outgoing/` and `tmp/` are directories this process can
    /// write into; else which one and why.
    pub fn check_writable(&self) -> Result<(), String> {
        for path in [self.outgoing(), self.staging()] {
            rustix::fs::access(&path, Access::WRITE_OK | Access::EXEC_OK)
                .map_err(|e| format!("{}: not writable: {}", path.display(), io::Error::from(e)))?;
        }
        Ok(())
    }

    /// Is `outgoing/<name>` there?
    pub fn is_pending(&self, name: &str) -> bool {
        valid_name(name) && fs::symlink_metadata(self.outgoing().join(name)).is_ok()
    }

    /// Files in `outgoing/`, oldest schedule first, with their content as
    /// Asterisk reads it.
    pub fn pending(&self) -> Result<Vec<Pending>, SpoolError> {
        let dir = self.outgoing();
        let io = |op| {
            let dir = dir.clone();
            move |err| SpoolError::Io { op, path: dir, err }
        };
        let mut out = Vec::new();
        open_dir(&dir).map_err(io("list"))?;
        for entry in fs::read_dir(&dir).map_err(io("list"))? {
            let entry = entry.map_err(io("list"))?;
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue; // gone meanwhile: Asterisk finished it
            };
            if !meta.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            // Never blocks, never follows: a FIFO or a link swapped in
            // meanwhile is listed unparsed.
            let parsed = crate::fsio::open_regular(&path, false)
                .ok()
                .and_then(|(f, _)| {
                    let mut buf = Vec::new();
                    f.take(MAX_READ + 1).read_to_end(&mut buf).ok()?;
                    (buf.len() as u64 <= MAX_READ).then(|| parse(&buf))
                });
            out.push(Pending {
                name,
                path,
                scheduled: meta.modified().unwrap_or(UNIX_EPOCH),
                parsed,
            });
        }
        out.sort_by(|a, b| a.scheduled.cmp(&b.scheduled).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// How many files in `outgoing/` have names starting with `prefix`.
    pub fn count_pending(&self, prefix: &str) -> Result<usize, SpoolError> {
        let dir = self.outgoing();
        let rd = fs::read_dir(&dir).map_err(|err| SpoolError::Io {
            op: "list",
            path: dir.clone(),
            err,
        })?;
        Ok(rd
            .filter_map(Result::ok)
            .filter(|e| e.file_name().as_bytes().starts_with(prefix.as_bytes()))
            .count())
    }

    /// Removes `outgoing/<name>`. The name must be a plain file name, so
    /// nothing outside `outgoing/` can be reached.
    pub fn cancel(&self, name: &str) -> Result<PathBuf, SpoolError> {
        if !valid_name(name) {
            return Err(SpoolError::BadName(name.to_string()));
        }
        let outgoing = self.outgoing();
        let path = outgoing.join(name);
        let dir = open_dir(&outgoing).map_err(|err| SpoolError::Io {
            op: "use",
            path: outgoing,
            err,
        })?;
        // unlinkat removes a symlink itself, never its target.
        match rustix::fs::unlinkat(&dir, name, AtFlags::empty()) {
            Ok(()) => Ok(path),
            Err(rustix::io::Errno::NOENT) => Err(SpoolError::NotFound(path)),
            Err(e) => Err(SpoolError::Io {
                op: "remove",
                path,
                err: e.into(),
            }),
        }
    }

    /// Removes staging files of ours (by name) created more than `age` ago,
    /// left by a process that was killed mid-publish. Returns how many.
    pub fn clean_stale_staging(&self, age: Duration) -> usize {
        let Ok(rd) = fs::read_dir(self.staging()) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut n = 0;
        for e in rd.filter_map(Result::ok) {
            let name = e.file_name();
            let Some(created) = name.to_str().and_then(stage_created) else {
                continue;
            };
            if now.duration_since(created).is_ok_and(|d| d > age)
                && fs::remove_file(e.path()).is_ok()
            {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "callback-89105647899.call",
            "x_y-z.1",
            "callback-+4420.call",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "..",
            "a/b",
            "../x",
            "a b",
            "a\0b",
            "é",
            &"a".repeat(201),
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_planted_symlink_at_the_staging_name_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        fs::create_dir_all(d.join("outgoing")).unwrap();
        fs::create_dir_all(d.join("tmp")).unwrap();
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = stage_name();
        std::os::unix::fs::symlink(&victim, d.join("tmp").join(&planted)).unwrap();
        let s = Spool::new(d);
        let sdir = open_dir(&d.join("tmp")).unwrap();
        let meta = fs::metadata(d.join("outgoing")).unwrap();
        let p = d.join("tmp").join(&planted);
        let r = s.write_staged(&sdir, &planted, &p, b"Channel: x", SystemTime::now(), &meta);
        assert!(matches!(
            r,
            Err(PublishError::Io {
                op: "create staging file",
                ..
            })
        ));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        // a dangling one too
        let dangling = stage_name();
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("tmp").join(&dangling)).unwrap();
        assert!(s
            .write_staged(&sdir, &dangling, &p, b"x", SystemTime::now(), &meta)
            .is_err());
        assert!(!d.join("nowhere").exists());
    }

    #[test]
    fn symlinked_spool_directories_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let d = d.path();
        let elsewhere = d.join("elsewhere");
        fs::create_dir_all(&elsewhere).unwrap();
        fs::create_dir_all(d.join("spool/tmp")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.join("spool/outgoing")).unwrap();
        let s = Spool::new(d.join("spool"));
        let e = s
            .publish("x.call", b"Channel: x", SystemTime::now())
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        fs::remove_file(d.join("spool/outgoing")).unwrap();
        fs::create_dir(d.join("spool/outgoing")).unwrap();
        fs::remove_dir(d.join("spool/tmp")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, d.join("spool/tmp")).unwrap();
        let e = s
            .publish("x.call", b"Channel: x", SystemTime::now())
            .unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(fs::read_dir(d.join("spool/outgoing")).unwrap().count(), 0);
    }

    #[test]
    fn stage_names_carry_their_time() {
        let n = stage_name();
        let t = stage_created(&n).unwrap();
        assert!(SystemTime::now().duration_since(t).unwrap() < Duration::from_secs(5));
        assert_eq!(stage_created("other.123"), None);
    }
}
