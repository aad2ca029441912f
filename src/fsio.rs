//! Opening files named by config or found in the spool without ever
//! blocking on them or following what should not be followed: a FIFO, a
//! socket or a device where a regular file belongs is an error at once,
//! not a hang; locks are taken within a bounded time.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// What kind of file `meta` describes, for messages.
pub fn kind(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

fn not_regular(meta: &Metadata) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is a {}, not a regular file", kind(meta)),
    )
}

/// Clears `O_NONBLOCK` again once the open could not block any more.
fn set_blocking(f: &File) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(f)?;
    rustix::fs::fcntl_setfl(f, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Opens `path` for reading; only a regular file is accepted. The open
/// itself never blocks (`O_NONBLOCK`: a FIFO without a writer would), and
/// with `follow` false a symbolic link is refused (`O_NOFOLLOW`).
pub fn open_regular(path: &Path, follow: bool) -> io::Result<(File, Metadata)> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| symlink_error(e, follow))?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(&meta));
    }
    set_blocking(&f)?;
    Ok((f, meta))
}

/// Reads a whole regular file of at most `max` bytes (a config, a call
/// file): never blocks on a FIFO; the error says what went wrong.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let (f, meta) = open_regular(path, true).map_err(|e| format!("cannot open: {e}"))?;
    let mut buf = Vec::with_capacity(meta.len().min(max) as usize + 1);
    f.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(buf)
}

/// FNV-1a, 64 bits, over `parts` each followed by a NUL: a stable key for
/// caches and derived ids (std's hasher may change between releases).
pub fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// `O_NOFOLLOW` on a symbolic link fails with `ELOOP`; say what it means.
fn symlink_error(e: io::Error, follow: bool) -> io::Error {
    if !follow && e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "is a symbolic link, which is not followed here",
        )
    } else {
        e
    }
}

/// How [`open_write`] opens.
#[derive(Debug, Clone, Copy)]
pub struct WriteOpts {
    /// Mode of a file created.
    pub mode: u32,
    /// `O_APPEND`.
    pub append: bool,
    /// Follow a symbolic link (else it is refused).
    pub follow: bool,
    /// Accept a character device (`/dev/null`, a terminal) too.
    pub chardev: bool,
}

/// Opens (creating it if absent) `path` for writing, never truncating and
/// never blocking (a FIFO without a reader is refused at once); only a
/// regular file is accepted, or a character device when `opts.chardev`.
pub fn open_write(path: &Path, opts: WriteOpts) -> io::Result<File> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if !opts.follow {
        flags |= libc::O_NOFOLLOW;
    }
    let (mode, append, allow_chardev) = (opts.mode, opts.append, opts.chardev);
    let f = OpenOptions::new()
        .write(true)
        .append(append)
        .create(true)
        .mode(mode)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NONBLOCK|O_WRONLY on a FIFO without a reader.
            Some(libc::ENXIO) => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a FIFO with no reader (not a regular file)",
            ),
            _ => symlink_error(e, opts.follow),
        })?;
    let meta = f.metadata()?;
    let ok = meta.is_file() || (allow_chardev && meta.file_type().is_char_device());
    if !ok {
        return Err(not_regular(&meta));
    }
    if meta.is_file() {
        set_blocking(&f)?;
    }
    Ok(f)
}

/// Run as root, becomes the owner of `dir` (its uid and gid, no
/// supplementary groups) when that is not root, so that nothing done next
/// can reach further than that owner could: a spool belongs to Asterisk's
/// user, who can replace any directory in it with a symbolic link. Returns
/// the uid and gid taken, `None` when nothing changed.
pub fn become_owner_of(dir: &Path) -> io::Result<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let meta = std::fs::metadata(dir)?;
    become_user(meta.uid(), meta.gid())
}

/// Run as root, becomes `uid`:`gid` (no supplementary groups) unless `uid`
/// is root. Returns what was taken, `None` when nothing changed.
pub fn become_user(uid: u32, gid: u32) -> io::Result<Option<(u32, u32)>> {
    if !rustix::process::geteuid().is_root() || uid == 0 {
        return Ok(None);
    }
    // SAFETY: plain syscalls with integer arguments; the group list is
    // empty. The order matters: groups and gid while still root. No safe
    // wrapper exists: rustix changes ids per thread only, and glibc's
    // wrappers are what make the change process-wide.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
        if libc::geteuid() != uid || libc::getegid() != gid {
            return Err(io::Error::other("the switch of user did not take"));
        }
    }
    Ok(Some((uid, gid)))
}

/// Who alert work acts as: the owner of the spool's `outgoing/` (whose
/// files Asterisk's user must be able to remove) and of the state
/// directory (whose database and WAL the AGI, run as Asterisk's user, must
/// write). They must be one user; a state directory not made yet takes
/// `outgoing/`'s owner. Pure: the owners (uid, gid) are arguments.
pub fn choose_owner(
    outgoing: (&Path, (u32, u32)),
    state: Option<(&Path, (u32, u32))>,
) -> Result<(u32, u32), String> {
    match state {
        Some((sp, (suid, _))) if suid != outgoing.1 .0 => Err(format!(
            "{} belongs to uid {} but {} to uid {suid}: make both the user Asterisk runs as \
             (chown -R asterisk: {})",
            outgoing.0.display(),
            outgoing.1 .0,
            sp.display(),
            sp.display()
        )),
        _ => Ok(outgoing.1),
    }
}

/// A regular file of ours, never through a symbolic link.
pub const PRIVATE: WriteOpts = WriteOpts {
    mode: 0o640,
    append: false,
    follow: false,
    chardev: false,
};

/// A log: appended to, a symbolic link followed, `/dev/null` accepted.
pub const LOG: WriteOpts = WriteOpts {
    mode: 0o640,
    append: true,
    follow: true,
    chardev: true,
};

/// Takes an exclusive `flock` on `path` (created if absent, never through
/// a symbolic link), waiting at most `timeout`. Held until the file is
/// dropped.
pub fn lock(path: &Path, timeout: Duration) -> io::Result<File> {
    let f = open_write(path, PRIVATE)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_micros(200);
    loop {
        match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(f),
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still locked by another process after {timeout:?}"),
            ));
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod owner_tests {
    use super::choose_owner;
    use std::path::Path;

    #[test]
    fn alert_work_acts_as_the_one_owner_of_outgoing_and_the_state() {
        let (o, s) = (Path::new("/spool/outgoing"), Path::new("/var/lib/x"));
        assert_eq!(
            choose_owner((o, (110, 120)), Some((s, (110, 120)))),
            Ok((110, 120))
        );
        // no state directory yet: outgoing's owner creates it
        assert_eq!(choose_owner((o, (110, 120)), None), Ok((110, 120)));
        // a root spool whose outgoing is root's but state is Asterisk's: refused
        let e = choose_owner((o, (0, 0)), Some((s, (110, 120)))).unwrap_err();
        assert!(
            e.contains("/spool/outgoing") && e.contains("/var/lib/x"),
            "{e}"
        );
        // all root's: root (Asterisk runs as root there)
        assert_eq!(choose_owner((o, (0, 0)), Some((s, (0, 0)))), Ok((0, 0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(p: &Path) {
        rustix::fs::mkfifoat(rustix::fs::CWD, p, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    }

    #[test]
    fn fifos_and_links_are_refused_at_once() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        let e = open_regular(&fifo, true).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = open_write(&fifo, LOG).unwrap_err();
        assert!(e.to_string().contains("FIFO"), "{e}");
        let target = d.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_write(&link, PRIVATE).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(open_regular(&link, false).is_err());
        assert!(open_regular(&link, true).is_ok());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let e = open_regular(d.path(), true).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
        assert!(open_write(Path::new("/dev/null"), LOG).is_ok());
        assert!(open_write(Path::new("/dev/null"), PRIVATE).is_err());
    }

    #[test]
    fn a_held_lock_times_out() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("lock");
        let held = lock(&p, Duration::from_secs(1)).unwrap();
        let t = Instant::now();
        let e = lock(&p, Duration::from_millis(100)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(100));
        drop(held);
        assert!(lock(&p, Duration::from_millis(100)).is_ok());
    }
}
