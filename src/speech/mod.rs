//! Text to a sound file Asterisk plays as is: 8000 Hz, mono, 16-bit PCM
//! `.wav`, rendered by an engine (`espeak-ng`, or any command given as an
//! argv), resampled with a proper low-pass (rubato's FFT resampler), cached
//! by a hash of engine, voice and text.
//!
//! The text reaches the engine only on its stdin: never in argv, never
//! through a shell, and as plain text (`[[ ]]`, espeak-ng's phoneme
//! brackets, cannot occur in it). The engine runs in a process group of its
//! own with an absolute deadline (its timeout, or the caller's budget,
//! whichever comes first) that covers its output pipes too; the whole group
//! is killed when it is up, when the caller stops, and once the engine
//! exits. Its output is checked (rate, channels, bits, length against the
//! file's size) before anything is allocated from it.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use serde::Deserialize;

/// The speech engine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpeechCfg {
    /// `espeak-ng`, `command` or `none` (always the fallback prompt).
    #[serde(default = "default_engine")]
    pub engine: String,
    /// The default language.
    #[serde(default = "default_language")]
    pub language: String,
    /// Language -> voice of the engine.
    #[serde(default)]
    pub voices: BTreeMap<String, String>,
    /// For `command`: argv (never a shell); the text comes on stdin;
    /// `{wav}` is the file to write, `{voice}` the voice.
    #[serde(default)]
    pub command: Vec<String>,
    /// Seconds the engine may take before it is killed.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
    /// Message templates by language; `{text}` and `{ack_digit}`.
    #[serde(default)]
    pub messages: BTreeMap<String, String>,
}

fn default_engine() -> String {
    "espeak-ng".into()
}
fn default_language() -> String {
    "en".into()
}
fn default_timeout() -> u64 {
    5
}

impl Default for SpeechCfg {
    fn default() -> Self {
        SpeechCfg {
            engine: default_engine(),
            language: default_language(),
            voices: BTreeMap::new(),
            command: Vec::new(),
            timeout_seconds: default_timeout(),
            messages: BTreeMap::new(),
        }
    }
}

/// The sample rate Asterisk's `slin` and 8 kHz wav need.
pub const RATE: u32 = 8000;
/// Most bytes of text given to the engine (about a minute of speech).
pub const MAX_SPEECH: usize = 1000;
/// Largest wav read back from an engine (6 minutes of 22050 Hz 16-bit).
pub const MAX_WAV: u64 = 16 << 20;
/// Sample rates, channels and length accepted from an engine.
pub const RATES: std::ops::RangeInclusive<u32> = 4000..=192_000;
pub const MAX_CHANNELS: u16 = 8;
pub const MAX_SECONDS: u64 = 180;

/// Why a render failed (the alert is raised all the same: its calls play
/// the fallback prompt, and `show` says why).
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error("speech engine is \"none\"")]
    Disabled,
    #[error("speech.command is empty")]
    NoCommand,
    #[error("stopping: not rendered")]
    Stopping,
    /// Every render slot stayed busy until the caller's deadline.
    #[error("no render slot free within the request's budget")]
    NoSlot,
    #[error("cannot create {}", .dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {prog}")]
    Spawn {
        prog: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for {prog}")]
    Wait {
        prog: String,
        #[source]
        source: std::io::Error,
    },
    /// The deadline (its timeout, the caller's budget) or a stop.
    #[error("{prog} {why}; killed")]
    Killed { prog: String, why: String },
    #[error("{prog} failed ({status}): {stderr}")]
    Failed {
        prog: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    /// What the engine wrote cannot be used.
    #[error("engine output {}: {what}", .path.display())]
    Output { path: PathBuf, what: String },
    #[error("resampler: {0}")]
    Resampler(String),
    #[error("cannot write {}: {what}", .path.display())]
    Write { path: PathBuf, what: String },
    #[error("cannot rename into place")]
    Rename(#[source] std::io::Error),
}

/// When a render must give up besides the engine's own timeout: the
/// caller's deadline (a request's budget) and a stop flag (shutdown).
#[derive(Debug, Clone, Copy, Default)]
pub struct Limit<'a> {
    pub deadline: Option<Instant>,
    pub stop: Option<&'a AtomicBool>,
}

impl Limit<'_> {
    fn stopped(&self) -> bool {
        self.stop.is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// The built-in message templates.
pub fn default_template(language: &str) -> &'static str {
    match language {
        "ru" => "Внимание. {text}. Нажмите {ack_digit}, чтобы подтвердить.",
        _ => "Alert. {text}. Press {ack_digit} to acknowledge.",
    }
}

/// The short phrases the AGI plays: on an alert call a confirmation and
/// "already done"; on the alert line (`AGI(alert,line)`) the rest. They
/// are rendered ahead of any call (`autodial alert prepare`, the
/// receiver's start), never during one.
pub fn phrase(language: &str, which: Phrase) -> &'static str {
    use Phrase::*;
    if language == "ru" {
        return match which {
            Acked => "Подтверждено. Спасибо.",
            Stale => "Эта тревога уже подтверждена или закрыта. До свидания.",
            NotRegistered => "Этот номер не зарегистрирован. До свидания.",
            EnterPin => "Введите ПИН-код.",
            WrongPin => "Неверный ПИН-код.",
            Locked => "Слишком много неверных ПИН-кодов. Номер заблокирован на час. До свидания.",
            Firing => "Активных тревог:",
            NoneFiring => "Активных тревог нет.",
            AckedAlerts => "Подтверждённых тревог:",
            Called => "Звонили:",
            NobodyCalled => "Ещё никому не звонили.",
            NotAcked => "Не подтверждена.",
            AckedBy => "Подтвердил",
            AlreadyAcked => "Уже подтвердил",
            Resolved => "Эта тревога закрыта.",
            OnCall => "Сейчас дежурят:",
            Nobody => "никто",
            End => "Тревог больше нет. До свидания.",
        };
    }
    match which {
        Acked => "Acknowledged. Thank you.",
        Stale => "This alert is already acknowledged or resolved. Goodbye.",
        NotRegistered => "This number is not registered. Goodbye.",
        EnterPin => "Please enter your PIN.",
        WrongPin => "Wrong PIN.",
        Locked => "Too many wrong PINs. This number is locked for an hour. Goodbye.",
        Firing => "Alerts firing:",
        NoneFiring => "No alerts are firing.",
        AckedAlerts => "Acknowledged alerts:",
        Called => "Called:",
        NobodyCalled => "Nobody was called yet.",
        NotAcked => "Not acknowledged.",
        AckedBy => "Acknowledged by",
        AlreadyAcked => "Already acknowledged by",
        Resolved => "This alert is resolved.",
        OnCall => "On call now:",
        Nobody => "nobody",
        End => "End of alerts. Goodbye.",
    }
}

/// A phrase the AGI plays besides the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    Acked,
    Stale,
    NotRegistered,
    EnterPin,
    WrongPin,
    Locked,
    /// Followed by the count (`SAY NUMBER`).
    Firing,
    NoneFiring,
    /// Followed by the count.
    AckedAlerts,
    /// Followed by the names.
    Called,
    NobodyCalled,
    NotAcked,
    /// Followed by the name.
    AckedBy,
    /// Followed by the name.
    AlreadyAcked,
    Resolved,
    /// Followed by each schedule's name and who is on call.
    OnCall,
    Nobody,
    End,
}

impl Phrase {
    /// Every phrase, for rendering ahead of the calls.
    pub const ALL: [Phrase; 18] = [
        Phrase::Acked,
        Phrase::Stale,
        Phrase::NotRegistered,
        Phrase::EnterPin,
        Phrase::WrongPin,
        Phrase::Locked,
        Phrase::Firing,
        Phrase::NoneFiring,
        Phrase::AckedAlerts,
        Phrase::Called,
        Phrase::NobodyCalled,
        Phrase::NotAcked,
        Phrase::AckedBy,
        Phrase::AlreadyAcked,
        Phrase::Resolved,
        Phrase::OnCall,
        Phrase::Nobody,
        Phrase::End,
    ];
}

/// The alert line's menu for these keys (ack, next, repeat, on call,
/// acknowledged too).
pub fn menu(language: &str, keys: [char; 5]) -> String {
    let said = |k: char| -> String {
        match (language, k) {
            ("ru", '#') => "решётку".into(),
            ("ru", '*') => "звёздочку".into(),
            (_, '#') => "pound".into(),
            (_, '*') => "star".into(),
            (_, d) => d.to_string(),
        }
    };
    let [ack, next, repeat, oncall, acked] = keys.map(said);
    if language == "ru" {
        format!(
            "Нажмите {ack}, чтобы подтвердить; {next}: следующая тревога; {repeat}: повторить; \
             {oncall}: кто дежурит; {acked}: подтверждённые тревоги."
        )
    } else {
        format!(
            "Press {ack} to acknowledge, {next} for the next alert, {repeat} to repeat, \
             {oncall} for who is on call, {acked} to hear acknowledged alerts too."
        )
    }
}

/// A contact's or schedule's name as said: `night_shift` is "night shift".
pub fn spoken_name(name: &str) -> String {
    name.chars()
        .map(|c| if matches!(c, '_' | '-' | '.') { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// The message to speak: the template for `language` with the alert's
/// text (control characters made blanks, bounded) and the ack digit.
pub fn message(cfg: &SpeechCfg, language: &str, text: &str, ack_digit: char) -> String {
    let template = cfg
        .messages
        .get(language)
        .map(String::as_str)
        .unwrap_or_else(|| default_template(language));
    // Plain text only: `[[` would switch espeak-ng to phoneme input for
    // the rest of the message ("press 1" included).
    let clean: String = text
        .chars()
        .map(|c| match c {
            '[' => '(',
            ']' => ')',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    let mut clean = clean.trim().to_string();
    if clean.len() > MAX_SPEECH {
        let mut end = MAX_SPEECH;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    // {ack_digit} first: the text may itself hold "{ack_digit}".
    template
        .replace("{ack_digit}", &ack_digit.to_string())
        .replace("{text}", &clean)
}

/// The voice for `language`: `speech.voices[language]`, else the
/// language itself.
pub fn voice(cfg: &SpeechCfg, language: &str) -> String {
    cfg.voices
        .get(language)
        .cloned()
        .unwrap_or_else(|| language.to_string())
}

/// Where the rendering of `text` in `voice` is cached: `<dir>/<hash>.wav`.
/// Asterisk is given the path without the extension.
pub fn cache_path(cfg: &SpeechCfg, dir: &Path, voice: &str, text: &str) -> PathBuf {
    let engine = if cfg.engine == "command" {
        cfg.command.join("\u{1f}")
    } else {
        cfg.engine.clone()
    };
    dir.join(format!(
        "{:016x}.wav",
        crate::fsio::fnv64(&[&engine, voice, text])
    ))
}

/// Renders `text` in `voice` into the cache (once); returns the cached
/// file. Errors say what failed (engine missing, exit status, timeout,
/// unreadable output).
pub fn render(
    cfg: &SpeechCfg,
    dir: &Path,
    voice: &str,
    text: &str,
    limit: Limit,
) -> Result<PathBuf, SpeechError> {
    if cfg.engine == "none" {
        return Err(SpeechError::Disabled);
    }
    let path = cache_path(cfg, dir, voice, text);
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(|source| SpeechError::Dir {
        dir: dir.to_path_buf(),
        source,
    })?;
    // Unique per process and render: threads of one process render at once.
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tag = format!(
        "{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let tmp_raw = dir.join(format!(".engine-{tag}.wav"));
    let tmp_out = dir.join(format!(".out-{tag}.wav"));
    let result = run_engine(cfg, voice, text, &tmp_raw, limit).and_then(|()| {
        let (samples, rate) = read_mono(&tmp_raw)?;
        write_8k(&samples, rate, &tmp_out)
            .and_then(|()| fs::rename(&tmp_out, &path).map_err(SpeechError::Rename))
    });
    let _ = fs::remove_file(&tmp_raw);
    let _ = fs::remove_file(&tmp_out);
    result.map(|()| path)
}

/// Kills the engine's process group (the engine and whatever it forked).
/// Its id is the engine's pid, which stays reserved while a member of the
/// group lives.
fn kill_group(child: &std::process::Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn run_engine(
    cfg: &SpeechCfg,
    voice: &str,
    text: &str,
    wav: &Path,
    limit: Limit,
) -> Result<(), SpeechError> {
    let wav_s = wav.to_string_lossy();
    let argv: Vec<String> = if cfg.engine == "command" {
        cfg.command
            .iter()
            .map(|a| a.replace("{wav}", &wav_s).replace("{voice}", voice))
            .collect()
    } else {
        vec![
            "espeak-ng".into(),
            "--stdin".into(),
            "-v".into(),
            voice.into(),
            "-w".into(),
            wav_s.into_owned(),
        ]
    };
    let Some((prog, args)) = argv.split_first() else {
        return Err(SpeechError::NoCommand);
    };
    let timeout = Duration::from_secs(cfg.timeout_seconds);
    let mut deadline = Instant::now() + timeout;
    let mut why = format!("took longer than {} s", cfg.timeout_seconds);
    if let Some(d) = limit.deadline.filter(|d| *d < deadline) {
        deadline = d;
        why = "ran past the request's budget".into();
    }
    if limit.stopped() {
        return Err(SpeechError::Stopping);
    }
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(prog)
        .args(args)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| SpeechError::Spawn {
            prog: prog.clone(),
            source,
        })?;
    // The text on stdin and the first 500 bytes of stderr, each from a
    // thread: an engine that reads nothing or keeps writing never blocks us
    // past the deadline (its children may hold the pipes open: the group is
    // killed, never waited on).
    let mut stdin = child.stdin.take();
    let input = text.to_string();
    std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(input.as_bytes());
        }
    });
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    if let Some(mut e) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut head = Vec::new();
            let _ = e.by_ref().take(500).read_to_end(&mut head);
            let _ = err_tx.send(head);
            let _ = io_drain(&mut e);
        });
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline || limit.stopped() => {
                kill_group(&child);
                let _ = child.wait();
                if limit.stopped() {
                    why = "stopped (shutting down)".into();
                }
                return Err(SpeechError::Killed {
                    prog: prog.clone(),
                    why,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                kill_group(&child);
                return Err(SpeechError::Wait {
                    prog: prog.clone(),
                    source,
                });
            }
        }
    };
    // Whatever the engine left running is not ours to wait for.
    kill_group(&child);
    if !status.success() {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        let err = err_rx.recv_timeout(left).unwrap_or_default();
        return Err(SpeechError::Failed {
            prog: prog.clone(),
            status,
            stderr: crate::escape_bytes(String::from_utf8_lossy(&err).trim().as_bytes()),
        });
    }
    Ok(())
}

fn io_drain(r: &mut impl Read) -> std::io::Result<u64> {
    std::io::copy(r, &mut std::io::sink())
}

/// Checks a wav header against the file's size and sane bounds before
/// anything is allocated from it: a header may claim any rate or length.
pub fn check_spec(spec: &hound::WavSpec, samples: u64, file_len: u64) -> Result<(), String> {
    if !RATES.contains(&spec.sample_rate) {
        return Err(format!(
            "sample rate {} Hz (accepted: {}-{})",
            spec.sample_rate,
            RATES.start(),
            RATES.end()
        ));
    }
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(format!("{} channels (1-{MAX_CHANNELS})", spec.channels));
    }
    let ok_bits = match spec.sample_format {
        hound::SampleFormat::Int => matches!(spec.bits_per_sample, 8 | 16 | 24 | 32),
        hound::SampleFormat::Float => spec.bits_per_sample == 32,
    };
    if !ok_bits {
        return Err(format!("{} bits a sample", spec.bits_per_sample));
    }
    let bytes = samples.saturating_mul(u64::from(spec.bits_per_sample / 8));
    if bytes > file_len {
        return Err(format!(
            "the header claims {samples} samples ({bytes} bytes) in a file of {file_len}"
        ));
    }
    let secs = samples / u64::from(spec.channels) / u64::from(spec.sample_rate);
    if secs > MAX_SECONDS {
        return Err(format!("{secs} s of sound (at most {MAX_SECONDS})"));
    }
    Ok(())
}

/// Reads a wav (any accepted rate, 8-32-bit or float, up to 8 channels)
/// as mono samples in -1..1, with its rate.
pub fn read_mono(path: &Path) -> Result<(Vec<f64>, u32), SpeechError> {
    let bad = |e: &dyn std::fmt::Display| SpeechError::Output {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let (f, meta) = crate::fsio::open_regular(path, false).map_err(|e| bad(&e))?;
    if meta.len() > MAX_WAV {
        return Err(bad(&format!("larger than {} MiB", MAX_WAV >> 20)));
    }
    let mut r = hound::WavReader::new(std::io::BufReader::new(f)).map_err(|e| bad(&e))?;
    let spec = r.spec();
    check_spec(&spec, u64::from(r.len()), meta.len()).map_err(|e| bad(&e))?;
    let ch = usize::from(spec.channels);
    let mut raw: Vec<f64> = Vec::with_capacity(r.len() as usize);
    match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 2f64.powi(i32::from(spec.bits_per_sample) - 1);
            for s in r.samples::<i32>() {
                raw.push(f64::from(s.map_err(|e| bad(&e))?) / scale);
            }
        }
        hound::SampleFormat::Float => {
            for s in r.samples::<f32>() {
                raw.push(f64::from(s.map_err(|e| bad(&e))?));
            }
        }
    }
    let mono = raw
        .chunks(ch)
        .map(|f| f.iter().sum::<f64>() / f.len() as f64)
        .collect();
    Ok((mono, spec.sample_rate))
}

/// Resamples `samples` from `rate` to 8000 Hz (band-limited: rubato's FFT
/// resampler, which low-passes below the new Nyquist frequency).
pub fn resample_8k(samples: &[f64], rate: u32) -> Result<Vec<f64>, SpeechError> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};
    if rate == RATE || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut r = Fft::<f64>::new(rate as usize, RATE as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| SpeechError::Resampler(e.to_string()))?;
    let out_len = r.process_all_needed_output_len(samples.len());
    let mut out = vec![0.0; out_len];
    let input = InterleavedSlice::new(samples, 1, samples.len())
        .map_err(|e| SpeechError::Resampler(e.to_string()))?;
    let mut output = InterleavedSlice::new_mut(&mut out, 1, out_len)
        .map_err(|e| SpeechError::Resampler(e.to_string()))?;
    let (_, n) = r
        .process_all_into_buffer(&input, &mut output, samples.len(), None)
        .map_err(|e| SpeechError::Resampler(e.to_string()))?;
    out.truncate(n);
    Ok(out)
}

/// Writes `samples` (at `rate`) as an 8 kHz mono 16-bit wav at `path`,
/// synced.
pub fn write_8k(samples: &[f64], rate: u32, path: &Path) -> Result<(), SpeechError> {
    let out = resample_8k(samples, rate)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let bad = |e: &dyn std::fmt::Display| SpeechError::Write {
        path: path.to_path_buf(),
        what: e.to_string(),
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| bad(&e))?;
    for s in out {
        let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
        w.write_sample(v).map_err(|e| bad(&e))?;
    }
    w.finalize().map_err(|e| bad(&e))?;
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| bad(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_fill_the_template_and_keep_the_text_inert() {
        let cfg = SpeechCfg::default();
        assert_eq!(
            message(&cfg, "en", "Disk full on db1", '1'),
            "Alert. Disk full on db1. Press 1 to acknowledge."
        );
        let m = message(&cfg, "ru", "Диск\nполон $(rm -rf /) {ack_digit}", '5');
        assert_eq!(
            m,
            "Внимание. Диск полон $(rm -rf /) {ack_digit}. Нажмите 5, чтобы подтвердить."
        );
        // espeak-ng's phoneme brackets never reach the engine
        let m = message(&cfg, "en", "disk [[full]] on db1", '1');
        assert_eq!(m, "Alert. disk ((full)) on db1. Press 1 to acknowledge.");
        assert!(!m.contains('[') && !m.contains(']'));
        let long = "я".repeat(2000);
        assert!(message(&cfg, "en", &long, '1').len() < MAX_SPEECH + 100);
    }

    #[test]
    fn wav_headers_are_checked_before_anything_is_allocated() {
        let spec = |rate, channels, bits| hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: hound::SampleFormat::Int,
        };
        // espeak-ng's own output: 22050 Hz mono 16-bit, 2 s
        assert!(check_spec(&spec(22050, 1, 16), 44100, 88244).is_ok());
        // a header claiming 1 Hz (the resampler would size 8000x the input)
        assert!(check_spec(&spec(1, 1, 16), 100, 1000)
            .unwrap_err()
            .contains("1 Hz"));
        assert!(check_spec(&spec(22050, 0, 16), 100, 1000).is_err());
        assert!(check_spec(&spec(22050, 200, 16), 100, 1000).is_err());
        assert!(check_spec(&spec(22050, 1, 12), 100, 1000).is_err());
        // more samples than the file holds (a 25 GB claim in a tiny file)
        let e = check_spec(&spec(22050, 1, 16), 12_500_000_000, 4096).unwrap_err();
        assert!(e.contains("12500000000 samples"), "{e}");
        // too long to be a message
        assert!(check_spec(&spec(8000, 1, 8), 8000 * 600, 8000 * 600).is_err());
    }

    #[test]
    fn a_forged_wav_is_refused_without_a_huge_allocation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.wav");
        // RIFF header: 1 Hz, mono, 16-bit, a data chunk claiming 4 GiB
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&36u32.to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&16u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        b.extend_from_slice(&[0; 64]);
        fs::write(&p, &b).unwrap();
        let e = read_mono(&p).unwrap_err().to_string();
        assert!(e.contains("sample rate 1 Hz"), "{e}");
    }

    #[test]
    fn a_tone_is_resampled_with_its_frequency_kept_and_no_alias() {
        // 1 s of 1 kHz at 22050 Hz, plus 6 kHz (above the new Nyquist of
        // 4 kHz: must be filtered out, not folded to 2 kHz)
        let rate = 22050;
        let sig: Vec<f64> = (0..rate)
            .map(|i| {
                let t = i as f64 / rate as f64;
                0.5 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()
                    + 0.3 * (2.0 * std::f64::consts::PI * 6000.0 * t).sin()
            })
            .collect();
        let out = resample_8k(&sig, rate as u32).unwrap();
        assert!((out.len() as i64 - 8000).abs() <= 2, "{}", out.len());
        // power at 1 kHz vs at 2 kHz (where 6 kHz would alias)
        let power = |f: f64| {
            let (mut re, mut im) = (0.0, 0.0);
            for (i, s) in out[500..7500].iter().enumerate() {
                let ph = 2.0 * std::f64::consts::PI * f * i as f64 / 8000.0;
                re += s * ph.cos();
                im += s * ph.sin();
            }
            (re * re + im * im).sqrt()
        };
        let (p1, p2) = (power(1000.0), power(2000.0));
        assert!(p1 > 1000.0, "{p1}");
        assert!(p2 < p1 / 100.0, "alias {p2} vs {p1}");
    }
}
