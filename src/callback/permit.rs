//! The permit list: `permit` in the config, and `permit_file`, a list kept
//! by another system (one number a line, blank lines ignored, `#` starts a
//! comment).
//!
//! A short `permit_file` is read on each call. A long one (a customer base
//! of millions) is looked up in a sorted index built from it when it
//! changes: `<state>/permit.idx`, keyed by the list's device, inode, size,
//! mtime and ctime, written under a temporary name and renamed into place,
//! never trusted when the key differs, rebuilt whole (never patched). A
//! list with a bad line is recorded as such, so every call reports the
//! line at once without reading the list again.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Config, ConfigError, MAX_DIGITS};
use crate::fsio;

/// Lists larger than this are looked up through the index.
pub const INDEX_ABOVE: u64 = 256 * 1024;
/// The index's file name in the state directory.
pub const INDEX_NAME: &str = "permit.idx";
/// The list is read in chunks of this size; a longer line is an error.
const CHUNK: usize = 64 * 1024;
/// How long a call waits for another one that is rebuilding the index.
const REBUILD_WAIT: Duration = Duration::from_secs(60);
const MAGIC: &[u8; 8] = b"AGICBPI1";
const HEADER: usize = 80;
const REC: usize = 10;
/// A number in the index: byte 0 is the digit count plus 32 for a leading
/// `+`; bytes 1..10 are the value, big-endian (20 digits need 67 bits).
type Rec = [u8; REC];

/// The answer, with a note for the log when the index was (or could not
/// be) rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub permitted: bool,
    pub note: Option<String>,
}

/// Is `number` (normalized) permitted? `state` is where the index is kept.
/// A `permit_file` with a line that is not a number is an error naming the
/// line, whatever number is asked for.
pub fn lookup(cfg: &Config, state: &Path, number: &str) -> Result<Lookup, ConfigError> {
    let listed = cfg.permit.iter().any(|p| p == number);
    let Some(path) = &cfg.permit_file else {
        return Ok(Lookup {
            permitted: listed,
            note: None,
        });
    };
    let err = |message: String| ConfigError {
        path: path.clone(),
        message,
    };
    let (mut f, meta) =
        fsio::open_regular(path, true).map_err(|e| err(format!("cannot open permit_file: {e}")))?;
    let mut note = None;
    let found = if meta.len() <= INDEX_ABOVE {
        scan(&mut f, number.as_bytes()).map_err(err)?
    } else {
        let (found, n) = via_index(&mut f, &meta, state, number.as_bytes()).map_err(err)?;
        note = n;
        found
    };
    Ok(Lookup {
        permitted: listed || found,
        note,
    })
}

/// Calls `each` with runs of whole lines (and the number of the first).
fn chunks<F>(f: &mut File, mut each: F) -> Result<(), String>
where
    F: FnMut(&[u8], usize) -> Result<(), String>,
{
    let mut buf = vec![0u8; CHUNK];
    let mut carry = 0usize; // start of a line left from the last chunk
    let mut line_base = 1usize; // number of the first line in `buf`
    loop {
        let n = loop {
            match f.read(&mut buf[carry..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("cannot read permit_file: {e}")),
            }
        };
        if n == 0 {
            return if carry > 0 {
                each(&buf[..carry], line_base)
            } else {
                Ok(())
            };
        }
        let filled = carry + n;
        match memchr::memrchr(b'\n', &buf[..filled]) {
            Some(last) => {
                let lines = &buf[..=last];
                each(lines, line_base)?;
                line_base += memchr::memchr_iter(b'\n', lines).count();
                buf.copy_within(last + 1..filled, 0);
                carry = filled - last - 1;
            }
            None if filled == buf.len() => {
                return Err(format!("line {line_base}: longer than {CHUNK} bytes"))
            }
            None => carry = filled,
        }
    }
}

/// The number on one line, `None` for a blank or comment line.
fn entry(line: &[u8], line_no: usize) -> Result<Option<&[u8]>, String> {
    let content = match memchr::memchr(b'#', line) {
        Some(c) => &line[..c],
        None => line,
    };
    let entry = content.trim_ascii();
    if entry.is_empty() {
        return Ok(None);
    }
    // Digits of any length are well-formed; one longer than a number can
    // be simply never matches.
    let digits = entry.strip_prefix(b"+").unwrap_or(entry);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "line {line_no}: {:?} is not a number",
            String::from_utf8_lossy(&entry[..entry.len().min(64)])
        ));
    }
    Ok(Some(entry))
}

fn scan(f: &mut File, want: &[u8]) -> Result<bool, String> {
    let mut found = false;
    chunks(f, |text, base| {
        found |= scan_lines(text, want, base)?;
        Ok(())
    })?;
    Ok(found)
}

/// Looks for `want` in whole lines of a permit file; `first_line` numbers
/// the first of them, for the error naming a line that is not a number.
fn scan_lines(text: &[u8], want: &[u8], first_line: usize) -> Result<bool, String> {
    if let Some(hit) = scan_plain_list(text, want) {
        return Ok(hit);
    }
    let mut found = false;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Some(e) = entry(line, first_line + i)? {
            found |= e == want;
        }
    }
    Ok(found)
}

/// The fast path for a list that is nothing but digits and line feeds (as
/// machine-kept lists are): one vectorised pass checks every byte, a
/// substring search finds the number on a line of its own. `None` when the
/// list has anything else (comments, blanks, `+`), for the line-by-line
/// reader.
fn scan_plain_list(text: &[u8], want: &[u8]) -> Option<bool> {
    // No early exit, so the compiler can vectorise it.
    let bad = text.iter().fold(0u8, |acc, &b| {
        acc | (u8::from(b.wrapping_sub(b'0') > 9) & u8::from(b != b'\n'))
    });
    let plain = bad == 0;
    if !plain || !want.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let hit = memchr::memmem::find_iter(text, want).any(|at| {
        let before = at == 0 || text[at - 1] == b'\n';
        let end = at + want.len();
        let after = end == text.len() || text[end] == b'\n';
        before && after
    });
    Some(hit)
}

/// A number as an index record; `None` when it has more digits than a
/// number can (such a line never matches).
fn encode(number: &[u8]) -> Option<Rec> {
    let (plus, digits) = match number.strip_prefix(b"+") {
        Some(d) => (true, d),
        None => (false, number),
    };
    if digits.is_empty() || digits.len() > MAX_DIGITS {
        return None;
    }
    let mut value: u128 = 0;
    for &d in digits {
        value = value * 10 + u128::from(d.wrapping_sub(b'0'));
    }
    let mut rec = [0u8; REC];
    rec[0] = digits.len() as u8 | if plus { 32 } else { 0 };
    rec[1..].copy_from_slice(&value.to_be_bytes()[16 - (REC - 1)..]);
    Some(rec)
}

/// What identifies one version of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key([u64; 7]);

impl Key {
    fn of(m: &Metadata) -> Key {
        Key([
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime() as u64,
            m.mtime_nsec() as u64,
            m.ctime() as u64,
            m.ctime_nsec() as u64,
        ])
    }
}

/// Reads every number of the list into sorted records, or the first bad
/// line.
fn build(f: &mut File) -> Result<Vec<Rec>, String> {
    let mut recs = Vec::new();
    chunks(f, |text, base| {
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if let Some(e) = entry(line, base + i)? {
                if let Some(r) = encode(e) {
                    recs.push(r);
                }
            }
        }
        Ok(())
    })?;
    recs.sort_unstable();
    recs.dedup();
    Ok(recs)
}

/// What a valid index for `key` says: `None` when there is none (absent,
/// another key, damaged).
fn read_index(path: &Path, key: &Key, want: &Rec) -> Option<Result<bool, String>> {
    let (f, meta) = fsio::open_regular(path, false).ok()?;
    let mut head = [0u8; HEADER];
    f.read_exact_at(&mut head, 0).ok()?;
    let word =
        |i: usize| u64::from_le_bytes(head[8 + i * 8..16 + i * 8].try_into().unwrap_or_default());
    if &head[..8] != MAGIC || (0..7).any(|i| word(i) != key.0[i]) {
        return None;
    }
    let (status, count) = (word(7), word(8));
    let body = meta.len().checked_sub(HEADER as u64)?;
    match status {
        0 if count.checked_mul(REC as u64) == Some(body) => {
            let (mut lo, mut hi) = (0u64, count);
            let mut rec = [0u8; REC];
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                f.read_exact_at(&mut rec, HEADER as u64 + mid * REC as u64)
                    .ok()?;
                match rec.cmp(want) {
                    std::cmp::Ordering::Less => lo = mid + 1,
                    std::cmp::Ordering::Greater => hi = mid,
                    std::cmp::Ordering::Equal => return Some(Ok(true)),
                }
            }
            Some(Ok(false))
        }
        1 if count == body && count <= 4096 => {
            let mut msg = vec![0u8; count as usize];
            f.read_exact_at(&mut msg, HEADER as u64).ok()?;
            Some(Err(String::from_utf8_lossy(&msg).into_owned()))
        }
        _ => None,
    }
}

/// Writes the index (or the list's error) under a temporary name and
/// renames it into place.
fn write_index(state: &Path, key: &Key, built: &Result<Vec<Rec>, String>) -> io::Result<()> {
    let tmp = state.join(format!("{INDEX_NAME}.tmp.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, &f);
        w.write_all(MAGIC)?;
        for v in key.0 {
            w.write_all(&v.to_le_bytes())?;
        }
        match built {
            Ok(recs) => {
                w.write_all(&0u64.to_le_bytes())?;
                w.write_all(&(recs.len() as u64).to_le_bytes())?;
                for r in recs {
                    w.write_all(r)?;
                }
            }
            Err(msg) => {
                let msg = &msg.as_bytes()[..msg.len().min(4096)];
                w.write_all(&1u64.to_le_bytes())?;
                w.write_all(&(msg.len() as u64).to_le_bytes())?;
                w.write_all(msg)?;
            }
        }
        w.flush()?;
        drop(w);
        f.sync_all()?;
        fs::rename(&tmp, state.join(INDEX_NAME))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The lookup through the index, rebuilding it first when the list
/// changed. One call rebuilds; calls arriving meanwhile wait for it (at
/// most [`REBUILD_WAIT`]) and use its result.
fn via_index(
    f: &mut File,
    meta: &Metadata,
    state: &Path,
    want: &[u8],
) -> Result<(bool, Option<String>), String> {
    let Some(want) = encode(want) else {
        return Ok((false, None));
    };
    let key = Key::of(meta);
    let idx = state.join(INDEX_NAME);
    if let Some(answer) = read_index(&idx, &key, &want) {
        return answer.map(|hit| (hit, None));
    }
    let lock = fs::create_dir_all(state)
        .and_then(|()| fsio::lock(&state.join(format!("{INDEX_NAME}.lock")), REBUILD_WAIT));
    if lock.is_ok() {
        if let Some(answer) = read_index(&idx, &key, &want) {
            return answer.map(|hit| (hit, None));
        }
    }
    let t = Instant::now();
    let built = build(f);
    let note = match &lock {
        Ok(_) => match write_index(state, &key, &built) {
            Ok(()) => match &built {
                Ok(recs) => format!(
                    "permit_file index rebuilt in {}: {} numbers, {} ms",
                    idx.display(),
                    recs.len(),
                    t.elapsed().as_millis()
                ),
                Err(_) => format!("permit_file has a bad line; recorded in {}", idx.display()),
            },
            Err(e) => format!("cannot write the permit_file index {}: {e}", idx.display()),
        },
        Err(e) => format!(
            "cannot lock the permit_file index in {}: {e}",
            state.display()
        ),
    };
    drop(lock);
    let recs = built?;
    Ok((recs.binary_search(&want).is_ok(), Some(note)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_permit_file(file: &Path) -> Config {
        Config::from_json(
            format!(
                r#"{{"permit_file": "{}", "call": {{"channel": "PJSIP/x", "context": "c"}}}}"#,
                file.display()
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn permitted(cfg: &Config, state: &Path, n: &str) -> Result<bool, String> {
        lookup(cfg, state, n)
            .map(|l| l.permitted)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn plain_lists_take_the_fast_path_and_agree_with_the_slow_one() {
        let list = b"89105647899\n123\n\n89100000000";
        assert_eq!(scan_plain_list(list, b"89105647899"), Some(true));
        assert_eq!(scan_plain_list(list, b"89100000000"), Some(true));
        assert_eq!(scan_plain_list(list, b"12"), Some(false));
        assert_eq!(scan_plain_list(list, b"23"), Some(false));
        assert_eq!(scan_plain_list(list, b"8910564789"), Some(false));
        // a line longer than any number never matches; it is no error
        assert_eq!(
            scan_plain_list(b"1\n123456789012345678901\n", b"1"),
            Some(true)
        );
        assert_eq!(scan_plain_list(b"1 # x\n", b"1"), None);
        assert_eq!(scan_plain_list(b"+1\n", b"1"), None);
        assert_eq!(scan_plain_list(b"1\n", b"+1"), None);
    }

    #[test]
    fn permit_file_paths_agree() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("permit.txt");
        let cfg = with_permit_file(&file);
        let st = dir.path().join("state");
        // plain (fast path) and commented (line by line): same answers
        for text in [
            "89105647899\n1234567890123456789012345\n",
            "# list\n 89105647899 # Ivan\n1234567890123456789012345\n+79105640000\n",
        ] {
            fs::write(&file, text).unwrap();
            assert!(permitted(&cfg, &st, "89105647899").unwrap(), "{text}");
            assert!(!permitted(&cfg, &st, "8910564789").unwrap(), "{text}");
        }
        fs::write(&file, "89105647899\n8910 564\n").unwrap();
        let e = permitted(&cfg, &st, "89105647899").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("permit.txt"), "{e}");
    }

    #[test]
    fn permit_file_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("permit.txt");
        let cfg = with_permit_file(&file);
        let st = dir.path().join("state");
        // 20,000 lines of 12 bytes: 240 KB (under INDEX_ABOVE), several
        // chunks; every number that straddles a chunk edge must be found
        let lines: Vec<String> = (0..20_000).map(|i| format!("8916{i:07}")).collect();
        for (text, commented) in [(lines.join("\n"), false), (lines.join(" # x\n"), true)] {
            fs::write(&file, &text).unwrap();
            for i in [0usize, 5461, 5462, 10922, 10923, 16383, 19_999] {
                assert!(permitted(&cfg, &st, &lines[i]).unwrap(), "{i} {commented}");
            }
            assert!(!permitted(&cfg, &st, "89160020000").unwrap());
            // a cut-off piece of a number is not the number
            assert!(!permitted(&cfg, &st, "6000546").unwrap());
        }
        let mut bad = lines.clone();
        bad[14_999] = "8916 bad".into();
        fs::write(&file, bad.join("\n")).unwrap();
        let e = permitted(&cfg, &st, "89160000000").unwrap_err();
        assert!(e.contains("line 15000: \"8916 bad\""), "{e}");
        fs::write(&file, "1\n".to_string() + &"9".repeat(70_000)).unwrap();
        let e = permitted(&cfg, &st, "1").unwrap_err();
        assert!(e.contains("line 2: longer than"), "{e}");
    }

    #[test]
    fn records_keep_every_number_apart() {
        let a = encode(b"99999999999999999999").unwrap();
        let b = encode(b"+99999999999999999999").unwrap();
        let c = encode(b"099999999999999999999");
        assert_ne!(a, b);
        assert_eq!(c, None, "21 digits never match");
        assert_ne!(encode(b"0123"), encode(b"123"));
        assert_ne!(encode(b"1"), encode(b"+1"));
        assert_eq!(encode(b""), None);
        assert_eq!(encode(b"+"), None);
    }

    #[test]
    fn a_long_list_is_indexed_once_and_rebuilt_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("permit.txt");
        let cfg = with_permit_file(&file);
        let st = dir.path().join("state");
        // 60,000 numbers (780 KB): over INDEX_ABOVE
        let mut lines: Vec<String> = (0..60_000).map(|i| format!("8916{i:07}")).collect();
        lines.push("+4420000000 # London".into());
        lines.push("99999999999999999999".into());
        lines.push("999999999999999999999999".into());
        fs::write(&file, lines.join("\n")).unwrap();
        let l = lookup(&cfg, &st, "89160012345").unwrap();
        assert!(l.permitted);
        assert!(l.note.unwrap().contains("60002 numbers"));
        assert!(st.join(INDEX_NAME).is_file());
        // the second call uses the index as it is
        let l = lookup(&cfg, &st, "89160059999").unwrap();
        assert_eq!(
            l,
            Lookup {
                permitted: true,
                note: None
            }
        );
        for (n, want) in [
            ("+4420000000", true),
            ("4420000000", false),
            ("99999999999999999999", true),
            ("89160060000", false),
            ("8916001234", false),
            ("1", false),
        ] {
            assert_eq!(permitted(&cfg, &st, n).unwrap(), want, "{n}");
        }
        // a changed list is never answered from the old index
        lines[12_345] = "70000000000".into();
        fs::write(&file, lines.join("\n")).unwrap();
        assert!(!permitted(&cfg, &st, "89160012345").unwrap());
        assert!(permitted(&cfg, &st, "70000000000").unwrap());
        // a bad line is recorded: every caller gets it, fast
        lines[33_000] = "8916-bad".into();
        fs::write(&file, lines.join("\n")).unwrap();
        for _ in 0..2 {
            let e = permitted(&cfg, &st, "70000000000").unwrap_err();
            assert!(e.contains("line 33001: \"8916-bad\""), "{e}");
        }
        // a damaged index is rebuilt, not trusted
        lines[33_000] = "80000000000".into();
        fs::write(&file, lines.join("\n")).unwrap();
        assert!(permitted(&cfg, &st, "80000000000").unwrap());
        let idx = st.join(INDEX_NAME);
        let len = fs::metadata(&idx).unwrap().len();
        let f = OpenOptions::new().write(true).open(&idx).unwrap();
        f.set_len(len - 3).unwrap();
        let l = lookup(&cfg, &st, "80000000000").unwrap();
        assert!(l.permitted && l.note.is_some());
        // an unwritable state dir still gives right answers
        let l = lookup(&cfg, &dir.path().join("permit.txt/x"), "80000000000").unwrap();
        assert!(l.permitted);
        assert!(l.note.unwrap().contains("cannot"));
    }

    #[test]
    fn a_fifo_as_permit_file_is_an_error_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("permit.fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &file,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let cfg = with_permit_file(&file);
        let e = permitted(&cfg, dir.path(), "1").unwrap_err();
        assert!(e.contains("FIFO"), "{e}");
    }
}
