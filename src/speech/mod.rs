//! Text to a sound file Asterisk plays as is: 8000 Hz, mono, 16-bit PCM
//! `.wav`, rendered by an engine (`espeak-ng`, or any command given as an
//! argv), resampled with a proper low-pass (rubato's FFT resampler), cached
//! by a hash of engine, voice and text.
//!
//! The text reaches the engine only on its stdin: never in argv, never
//! through a shell. The engine runs with a timeout and is killed when the
//! time is up.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::alert::config::SpeechCfg;

/// The sample rate Asterisk's `slin` and 8 kHz wav need.
pub const RATE: u32 = 8000;
/// Most bytes of text given to the engine (about a minute of speech).
pub const MAX_SPEECH: usize = 1000;
/// Largest wav read back from an engine.
const MAX_WAV: u64 = 64 << 20;

/// The built-in message templates.
pub fn default_template(language: &str) -> &'static str {
    match language {
        "ru" => "Внимание. {text}. Нажмите {ack_digit}, чтобы подтвердить.",
        _ => "Alert. {text}. Press {ack_digit} to acknowledge.",
    }
}

/// The short phrases the AGI plays: a confirmation and "already done".
pub fn phrase(language: &str, which: Phrase) -> &'static str {
    match (language, which) {
        ("ru", Phrase::Acked) => "Подтверждено. Спасибо.",
        ("ru", Phrase::Stale) => "Эта тревога уже подтверждена или закрыта. До свидания.",
        (_, Phrase::Acked) => "Acknowledged. Thank you.",
        (_, Phrase::Stale) => "This alert is already acknowledged or resolved. Goodbye.",
    }
}

/// A phrase the AGI plays besides the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phrase {
    Acked,
    Stale,
}

/// The message to speak: the template for `language` with the alert's
/// text (control characters made blanks, bounded) and the ack digit.
pub fn message(cfg: &SpeechCfg, language: &str, text: &str, ack_digit: char) -> String {
    let template = cfg
        .messages
        .get(language)
        .map(String::as_str)
        .unwrap_or_else(|| default_template(language));
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
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
pub fn render(cfg: &SpeechCfg, dir: &Path, voice: &str, text: &str) -> Result<PathBuf, String> {
    if cfg.engine == "none" {
        return Err("speech engine is \"none\"".into());
    }
    let path = cache_path(cfg, dir, voice, text);
    if path.is_file() {
        return Ok(path);
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let tmp_raw = dir.join(format!(
        ".engine-{}-{}.wav",
        std::process::id(),
        crate::fsio::fnv64(&[text, voice])
    ));
    let _ = fs::remove_file(&tmp_raw);
    let result = run_engine(cfg, voice, text, &tmp_raw).and_then(|()| {
        let samples = read_mono(&tmp_raw)?;
        let tmp_out = dir.join(format!(".out-{}.wav", std::process::id()));
        write_8k(&samples.0, samples.1, &tmp_out)
            .and_then(|()| {
                fs::rename(&tmp_out, &path).map_err(|e| format!("cannot rename into place: {e}"))
            })
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp_out);
            })
    });
    let _ = fs::remove_file(&tmp_raw);
    result.map(|()| path)
}

fn run_engine(cfg: &SpeechCfg, voice: &str, text: &str, wav: &Path) -> Result<(), String> {
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
        return Err("speech.command is empty".into());
    };
    use std::os::unix::process::CommandExt;
    // A process group of its own, so a timeout kills whatever the engine
    // started too (a wrapper script's children).
    let mut child = Command::new(prog)
        .args(args)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    // The text on stdin, from a thread: an engine that does not read must
    // not block us past the timeout.
    let mut stdin = child.stdin.take();
    let input = text.to_string();
    let writer = std::thread::spawn(move || {
        if let Some(s) = stdin.as_mut() {
            let _ = s.write_all(input.as_bytes());
        }
        drop(stdin);
    });
    let deadline = Instant::now() + Duration::from_secs(cfg.timeout_seconds);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: signalling the group we created (its id is the
                // child's pid).
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.kill();
                let _ = child.wait();
                let _ = writer.join();
                return Err(format!(
                    "{prog} took longer than {} s; killed",
                    cfg.timeout_seconds
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {prog}: {e}")),
        }
    };
    let _ = writer.join();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.by_ref().take(500).read_to_string(&mut err);
        }
        return Err(format!(
            "{prog} failed ({status}): {}",
            crate::escape_bytes(err.trim().as_bytes())
        ));
    }
    Ok(())
}

/// Reads a wav (any rate, 16-bit or float, any channel count) as mono
/// samples in -1..1, with its rate.
pub fn read_mono(path: &Path) -> Result<(Vec<f64>, u32), String> {
    let bad = |e: &dyn std::fmt::Display| format!("engine output {}: {e}", path.display());
    let meta = fs::metadata(path).map_err(|e| bad(&e))?;
    if meta.len() > MAX_WAV {
        return Err(bad(&"larger than 64 MiB"));
    }
    let mut r = hound::WavReader::open(path).map_err(|e| bad(&e))?;
    let spec = r.spec();
    let ch = usize::from(spec.channels.max(1));
    let raw: Vec<f64> = match spec.sample_format {
        hound::SampleFormat::Int => {
            let scale = 2f64.powi(i32::from(spec.bits_per_sample.clamp(1, 32)) - 1);
            r.samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) / scale))
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&e))?
        }
        hound::SampleFormat::Float => r
            .samples::<f32>()
            .map(|s| s.map(f64::from))
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?,
    };
    let mono = raw
        .chunks(ch)
        .map(|f| f.iter().sum::<f64>() / f.len() as f64)
        .collect();
    if spec.sample_rate == 0 {
        return Err(bad(&"sample rate 0"));
    }
    Ok((mono, spec.sample_rate))
}

/// Resamples `samples` from `rate` to 8000 Hz (band-limited: rubato's FFT
/// resampler, which low-passes below the new Nyquist frequency).
pub fn resample_8k(samples: &[f64], rate: u32) -> Result<Vec<f64>, String> {
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{Fft, FixedSync, Resampler};
    if rate == RATE || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let mut r = Fft::<f64>::new(rate as usize, RATE as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| format!("resampler: {e}"))?;
    let out_len = r.process_all_needed_output_len(samples.len());
    let mut out = vec![0.0; out_len];
    let input =
        InterleavedSlice::new(samples, 1, samples.len()).map_err(|e| format!("resampler: {e}"))?;
    let mut output =
        InterleavedSlice::new_mut(&mut out, 1, out_len).map_err(|e| format!("resampler: {e}"))?;
    let (_, n) = r
        .process_all_into_buffer(&input, &mut output, samples.len(), None)
        .map_err(|e| format!("resampler: {e}"))?;
    out.truncate(n);
    Ok(out)
}

/// Writes `samples` (at `rate`) as an 8 kHz mono 16-bit wav at `path`,
/// synced.
pub fn write_8k(samples: &[f64], rate: u32, path: &Path) -> Result<(), String> {
    let out = resample_8k(samples, rate)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let bad = |e: &dyn std::fmt::Display| format!("cannot write {}: {e}", path.display());
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
        let long = "я".repeat(2000);
        assert!(message(&cfg, "en", &long, '1').len() < MAX_SPEECH + 100);
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
