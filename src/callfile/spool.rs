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

use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use filetime::FileTime;

use super::model::{CallFile, RenderError};
use super::parse::{parse, Parsed};

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
#[derive(Debug)]
pub enum PublishError {
    /// A file of that name is pending (or its call in progress).
    AlreadyPending(PathBuf),
    /// The name is not a plain file name.
    BadName(String),
    /// The staging dir and `outgoing/` are on different filesystems, so the
    /// file could not be moved in atomically with its schedule.
    CrossDevice { staging: PathBuf, outgoing: PathBuf },
    /// The call file could not be rendered.
    Render(RenderError),
    /// An I/O step failed.
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::AlreadyPending(p) => {
                write!(f, "{} is already pending", p.display())
            }
            PublishError::BadName(n) => write!(f, "bad call file name {n:?}: use letters, digits, '.', '_', '-', '+', not starting with '.'"),
            PublishError::CrossDevice { staging, outgoing } => write!(
                f,
                "{} and {} are on different filesystems; a call file cannot be moved in atomically with its schedule",
                staging.display(),
                outgoing.display()
            ),
            PublishError::Render(e) => e.fmt(f),
            PublishError::Io { op, path, err } => {
                write!(f, "cannot {op} {}: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for PublishError {}

/// Why listing or cancelling failed.
#[derive(Debug)]
pub enum SpoolError {
    BadName(String),
    NotFound(PathBuf),
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
}

impl fmt::Display for SpoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpoolError::BadName(n) => write!(f, "bad call file name {n:?}"),
            SpoolError::NotFound(p) => write!(f, "{} is not pending", p.display()),
            SpoolError::Io { op, path, err } => {
                write!(f, "cannot {op} {}: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for SpoolError {}

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

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Moves `from` to `to` unless `to` exists. `Ok(false)` when it exists.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<bool> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD needs no fd.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EEXIST) => Ok(false),
        // The filesystem (or kernel) lacks RENAME_NOREPLACE: link() fails
        // with EEXIST too, and never replaces.
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => {
            match fs::hard_link(from, to) {
                Ok(()) => {
                    let _ = fs::remove_file(from);
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(e),
            }
        }
        _ => Err(err),
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
        let sdev = fs::metadata(&staging).map_err(io_err("use staging directory", &staging))?;
        let odev = fs::metadata(&outgoing).map_err(io_err("use spool directory", &outgoing))?;
        if !sdev.is_dir() {
            return Err(PublishError::Io {
                op: "use staging directory",
                path: staging,
                err: io::Error::from(io::ErrorKind::NotADirectory),
            });
        }
        if sdev.dev() != odev.dev() {
            return Err(PublishError::CrossDevice { staging, outgoing });
        }
        let target = outgoing.join(name);
        // Cheap early answer; the rename below is what decides.
        if fs::symlink_metadata(&target).is_ok() {
            return Err(PublishError::AlreadyPending(target));
        }
        let staged = staging.join(stage_name());
        let result = self
            .write_staged(&staged, contents, at, &odev)
            .and_then(|()| match rename_noreplace(&staged, &target) {
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
                if let Ok(d) = File::open(&outgoing) {
                    let _ = d.sync_all();
                }
                Ok(target)
            }
            Err(e) => {
                let _ = fs::remove_file(&staged);
                Err(e)
            }
        }
    }

    fn write_staged(
        &self,
        staged: &Path,
        contents: &[u8],
        at: SystemTime,
        outgoing_meta: &fs::Metadata,
    ) -> Result<(), PublishError> {
        // create_new is O_CREAT|O_EXCL: fails on any existing entry,
        // including a planted symlink, which it never follows.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(staged)
            .map_err(io_err("create staging file", staged))?;
        f.write_all(contents)
            .map_err(io_err("write staging file", staged))?;
        // Run as root (an operator's autodial), hand the file to the owner
        // of outgoing/ (Asterisk's user), who must be able to update it.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
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
            let parsed = File::open(&path).ok().and_then(|f| {
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
        let path = self.outgoing().join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(SpoolError::NotFound(path)),
            Err(err) => Err(SpoolError::Io {
                op: "remove",
                path,
                err,
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
        let d = std::env::temp_dir().join(format!("spool-symlink-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("outgoing")).unwrap();
        fs::create_dir_all(d.join("tmp")).unwrap();
        let victim = d.join("victim");
        fs::write(&victim, "precious").unwrap();
        let planted = d.join("tmp").join(stage_name());
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let s = Spool::new(&d);
        let meta = fs::metadata(d.join("outgoing")).unwrap();
        let r = s.write_staged(&planted, b"Channel: x", SystemTime::now(), &meta);
        assert!(matches!(
            r,
            Err(PublishError::Io {
                op: "create staging file",
                ..
            })
        ));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        // a dangling one too
        let dangling = d.join("tmp").join(stage_name());
        std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
        assert!(s
            .write_staged(&dangling, b"x", SystemTime::now(), &meta)
            .is_err());
        assert!(!d.join("nowhere").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn stage_names_carry_their_time() {
        let n = stage_name();
        let t = stage_created(&n).unwrap();
        assert!(SystemTime::now().duration_since(t).unwrap() < Duration::from_secs(5));
        assert_eq!(stage_created("other.123"), None);
    }
}
