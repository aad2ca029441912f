//! Property tests: the parsers never panic on arbitrary bytes, quoting
//! round-trips through Asterisk's word splitting, and call files round-trip
//! through render and parse.

use std::io::Cursor;

use agi_callback::agi::{parse_reply, Command, Env, Session};
use agi_callback::callfile::{parse, Action, CallFile, CallerId};
use proptest::prelude::*;

/// Asterisk's word splitting of a command line (res_agi.c `parse_args`):
/// blanks (space, tab) separate words outside quotes; `"` toggles quoting
/// and is dropped; `\x` yields `x`.
fn asterisk_split(line: &[u8]) -> Vec<Vec<u8>> {
    let mut words = Vec::new();
    let mut cur = Vec::new();
    let mut in_word = false;
    let (mut quoted, mut escaped) = (false, false);
    for &c in line {
        if escaped {
            cur.push(c);
            in_word = true;
            escaped = false;
            continue;
        }
        match c {
            b' ' | b'\t' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            b'"' => {
                quoted = !quoted;
                in_word = true;
            }
            b'\\' => escaped = true,
            _ => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn env_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Env::parse(&bytes);
        let _ = Env::read_from(&mut Cursor::new(&bytes));
    }

    #[test]
    fn env_parser_never_panics_on_near_valid_input(
        lines in proptest::collection::vec(("agi_[a-z_0-9]{0,12}", proptest::collection::vec(any::<u8>(), 0..40)), 0..30)
    ) {
        let mut block = Vec::new();
        for (k, v) in &lines {
            block.extend_from_slice(k.as_bytes());
            block.extend_from_slice(b": ");
            block.extend_from_slice(v);
            block.push(b'\n');
        }
        block.push(b'\n');
        let _ = Env::parse(&block);
    }

    #[test]
    fn reply_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_reply(&bytes);
    }

    #[test]
    fn reply_parser_never_panics_on_near_valid_input(
        code in prop_oneof![Just("200"), Just("100"), Just("510"), Just("511"), Just("520"), Just("520-"), Just("HANGUP")],
        rest in "[ -~()=]{0,40}",
        more in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut b = format!("{code} {rest}\n").into_bytes();
        b.extend_from_slice(&more);
        if let Ok((_, used)) = parse_reply(&b) {
            prop_assert!(used <= b.len());
        }
    }

    #[test]
    fn session_never_panics_on_any_reply_stream(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut input = b"agi_request: x\n\n".to_vec();
        input.extend_from_slice(&bytes);
        let mut s = Session::new(Cursor::new(input), std::io::sink());
        s.read_env().unwrap();
        for _ in 0..5 {
            if s.send(&Command::noop()).is_err() {
                break;
            }
        }
    }

    #[test]
    fn quoting_round_trips_through_asterisk_splitting(
        text in proptest::collection::vec(any::<u8>().prop_filter("no CR LF NUL", |b| !matches!(b, b'\r' | b'\n' | 0)), 0..300),
    ) {
        let cmd = Command::set_variable(b"X", &text).unwrap();
        let words = asterisk_split(cmd.as_bytes());
        prop_assert_eq!(words.len(), 4);
        prop_assert_eq!(&words[0], b"SET");
        prop_assert_eq!(&words[2], b"X");
        prop_assert_eq!(&words[3], &text);
    }

    #[test]
    fn quoting_refuses_cr_lf_nul(
        head in "[a-z]{0,5}", bad in prop_oneof![Just(b'\r'), Just(b'\n'), Just(0u8)], tail in "[a-z]{0,5}"
    ) {
        let mut t = head.into_bytes();
        t.push(bad);
        t.extend_from_slice(tail.as_bytes());
        prop_assert!(Command::verbose(&t, 1).is_err());
    }

    #[test]
    fn callfile_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }
}

/// Printable values without the characters render refuses outright.
fn value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9 ._@/+()!-]{0,30}[A-Za-z0-9]"
}

/// Free text for Data and Set: `;` allowed (escaped), `#` only after a
/// non-blank, inner blanks, UTF-8.
fn free_text() -> impl Strategy<Value = String> {
    "([A-Za-z0-9;,=:.]|Жж|[A-Za-z0-9]#|\\\\[A-Za-z;])([A-Za-z0-9;,=:.]|Жж| [A-Za-z0-9;]|[A-Za-z0-9]#|\\\\[A-Za-z;]){0,20}"
}

fn callerid() -> impl Strategy<Value = Option<CallerId>> {
    proptest::option::of(
        (
            proptest::option::of("[A-Za-z][A-Za-z0-9 ]{0,10}[A-Za-z0-9]"),
            proptest::option::of("\\+?[0-9]{1,15}"),
        )
            .prop_filter("name or number", |(n, m)| n.is_some() || m.is_some())
            .prop_map(|(name, number)| CallerId { name, number }),
    )
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        (value(), "[a-z0-9_]{1,10}", proptest::option::of(1u32..1000)).prop_map(
            |(context, extension, priority)| Action::Extension {
                context,
                extension,
                priority
            }
        ),
        ("[A-Z][A-Za-z]{1,10}", proptest::option::of(free_text()))
            .prop_map(|(application, data)| Action::Application { application, data }),
    ]
}

prop_compose! {
    fn call_file()(
        channel in "(PJSIP|Local|SIP|IAX2)/[A-Za-z0-9@._-]{1,30}",
        callerid in callerid(),
        max_retries in proptest::option::of(0u32..=1000),
        retry_time in proptest::option::of(1u32..=604800),
        wait_time in proptest::option::of(1u32..=86400),
        account in proptest::option::of(value()),
        action in action(),
        variables in proptest::collection::vec(("_{0,2}[A-Za-z][A-Za-z0-9_]{0,10}|CDR\\(userfield\\)", free_text()), 0..5),
        archive in proptest::option::of(any::<bool>()),
        always_delete in proptest::option::of(any::<bool>()),
        codecs in proptest::option::of("[a-z0-9,]{1,20}"),
        early_media in proptest::option::of(any::<bool>()),
    ) -> CallFile {
        CallFile { channel, callerid, max_retries, retry_time, wait_time, account, action,
                   variables, archive, always_delete, codecs, early_media }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn callfile_round_trips(cf in call_file()) {
        let text = cf.render().unwrap();
        let parsed = parse(text.as_bytes());
        prop_assert!(!parsed.has_errors(), "{:?}\n{}", parsed.diagnostics, text);
        prop_assert_eq!(parsed.call, Some(cf), "{}", text);
    }
}

const ALERTS_SAMPLE: &str = include_str!("../agi-bin/alerts.json");

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// alerts.json: any byte flipped, cut or inserted gives a config or a
    /// named error, never a panic; what loads is internally consistent.
    #[test]
    fn alerts_config_never_panics_and_what_loads_is_consistent(
        at in 0usize..2000, cut in 0usize..2000, b in any::<u8>(), mode in 0u8..3
    ) {
        let mut bytes = ALERTS_SAMPLE.as_bytes().to_vec();
        let at = at % bytes.len();
        match mode {
            0 => bytes[at] = b,
            1 => bytes.truncate(cut % bytes.len()),
            _ => bytes.insert(at, b),
        }
        if let Ok(cfg) = agi_callback::alert::config::AlertsConfig::from_json(&bytes) {
            for chain in cfg.chains.values() {
                for step in &chain.steps {
                    for c in &step.contacts {
                        prop_assert!(cfg.contacts.contains_key(c));
                    }
                }
                for step in &chain.steps {
                    for s in &step.schedules {
                        prop_assert!(cfg.schedules.contains_key(s));
                    }
                }
                // with nobody on call, every schedule of a step is one
                // nobody_on_call row: never a silent step
                let nobody = |_: &str, _: u64| agi_callback::oncall::OnCall {
                    contacts: vec![],
                    source: agi_callback::oncall::Source::Nobody,
                };
                let planned = agi_callback::alert::plan(chain, nobody);
                let per_round: usize = chain
                    .steps
                    .iter()
                    .map(|s| {
                        let mut c = s.contacts.clone();
                        c.sort();
                        c.dedup();
                        c.len() + s.schedules.len()
                    })
                    .sum();
                prop_assert_eq!(planned.len(), per_round * (chain.repeat as usize + 1));
            }
            for r in &cfg.routes {
                prop_assert!(cfg.chains.contains_key(&r.chain));
            }
        }
    }

    /// The text path into a speech engine: whatever the monitoring system
    /// sends, the message holds no control character, keeps the text's
    /// words, and is bounded.
    #[test]
    fn the_spoken_message_is_inert_and_bounded(text in any::<String>(), digit in prop::sample::select(vec!['0', '1', '9', '*', '#'])) {
        let cfg = agi_callback::alert::config::SpeechCfg::default();
        for lang in ["en", "ru", "xx"] {
            let m = agi_callback::speech::message(&cfg, lang, &text, digit);
            prop_assert!(!m.chars().any(char::is_control), "{:?}", m);
            prop_assert!(m.len() <= agi_callback::speech::MAX_SPEECH + 200);
            prop_assert!(m.contains(digit));
        }
    }
}
