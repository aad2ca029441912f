//! The AGI layer against what a real Asterisk 22.10 sent (fixtures/).

use std::io::{self, BufReader, Cursor, Write};

use agi_callback::agi::{
    parse_reply, Command, Env, EnvError, Reply, ReplyError, Session, SessionError, State,
};

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/fixtures/asterisk-22.10/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn env_args_parses_to_the_right_values() {
    let env = Env::parse(&fixture("env-args.txt")).unwrap();
    assert_eq!(env.request(), Some(&b"dump.sh"[..]));
    assert_eq!(
        env.channel(),
        Some(&b"Local/84955556677@incoming-00000001;2"[..])
    );
    assert_eq!(env.get("agi_language"), Some(&b"en"[..]));
    assert_eq!(env.uniqueid(), Some(&b"1795666733.3"[..]));
    assert_eq!(env.callerid(), Some(&b"89105647899"[..]));
    assert_eq!(env.calleridname(), Some(&b"Ivan"[..]));
    assert_eq!(env.dnid(), None);
    assert_eq!(env.rdnis(), None);
    assert_eq!(env.get("agi_dnid"), Some(&b"unknown"[..]));
    assert_eq!(env.context(), Some(&b"incoming"[..]));
    assert_eq!(env.extension(), Some(&b"84955556677"[..]));
    assert_eq!(env.priority(), Some(2));
    assert_eq!(env.threadid(), Some(140617792300736));
    assert_eq!(env.callingpres(), Some(0));
    assert_eq!(env.get("agi_accountcode"), Some(&b""[..]));
    assert_eq!(env.arg(1), Some(&b"arg one"[..]));
    assert_eq!(env.arg(2), Some(&b"two"[..]));
    assert_eq!(env.arg(3), None);
    assert_eq!(env.arg(0), None);
    // every key, in Asterisk's order
    let keys: Vec<&str> = env.entries().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "agi_request",
            "agi_channel",
            "agi_language",
            "agi_type",
            "agi_uniqueid",
            "agi_version",
            "agi_callerid",
            "agi_calleridname",
            "agi_callingpres",
            "agi_callingani2",
            "agi_callington",
            "agi_callingtns",
            "agi_dnid",
            "agi_rdnis",
            "agi_context",
            "agi_extension",
            "agi_priority",
            "agi_enhanced",
            "agi_accountcode",
            "agi_threadid",
            "agi_arg_1",
            "agi_arg_2"
        ]
    );
    assert!(!env.is_network());
}

#[test]
fn env_unknown_callerid_and_utf8_name() {
    let env = Env::parse(&fixture("env-unknown-callerid.txt")).unwrap();
    assert_eq!(env.callerid(), None);
    assert_eq!(env.calleridname(), None);
    assert_eq!(env.callingpres(), Some(67));
    assert_eq!(env.args().count(), 0);

    let env = Env::parse(&fixture("env-utf8-name.txt")).unwrap();
    assert_eq!(env.callerid(), Some(&b"+79105647899"[..]));
    assert_eq!(env.get_lossy("agi_calleridname").unwrap(), "Иван Петров");
    let env = Env::parse(&fixture("env-hangup.txt")).unwrap();
    assert_eq!(env.extension(), Some(&b"hup"[..]));
    assert_eq!(env.threadid(), Some(140108691064512));
}

#[test]
fn env_block_is_read_from_a_stream_and_nothing_more() {
    let mut stream = fixture("env-args.txt");
    stream.extend_from_slice(b"200 result=1\n");
    let mut r = Cursor::new(stream);
    Env::read_from(&mut r).unwrap();
    let mut rest = Vec::new();
    io::Read::read_to_end(&mut r, &mut rest).unwrap();
    assert_eq!(rest, b"200 result=1\n");
}

#[test]
fn fastagi_keys_and_unknown_keys_are_kept() {
    let block = b"agi_network: yes\nagi_network_script: callback\nagi_request: agi://127.0.0.1/callback\nagi_new_key_from_asterisk_30: \xff\xfe\n\n";
    let env = Env::parse(block).unwrap();
    assert!(env.is_network());
    assert_eq!(env.get("agi_network_script"), Some(&b"callback"[..]));
    assert_eq!(
        env.get("agi_new_key_from_asterisk_30"),
        Some(&b"\xff\xfe"[..])
    );
    assert_eq!(
        env.get_lossy("agi_new_key_from_asterisk_30").unwrap(),
        "\u{fffd}\u{fffd}"
    );
}

#[test]
fn malformed_env_blocks_get_their_named_error() {
    let full = fixture("env-args.txt");
    // cut short: EOF before the empty line
    let cut = &full[..full.len() - 1];
    assert_eq!(
        Env::read_from(&mut Cursor::new(cut)),
        Err(EnvError::UnexpectedEof {
            line: 23,
            offset: cut.len()
        })
    );
    assert!(matches!(
        Env::read_from(&mut Cursor::new(&b""[..])),
        Err(EnvError::UnexpectedEof { line: 1, offset: 0 })
    ));
    // a line without ':'
    assert_eq!(
        Env::parse(b"agi_request: x\ngarbage line\n\n"),
        Err(EnvError::MissingColon {
            line: 2,
            offset: 15
        })
    );
    // a bad byte in a key
    assert_eq!(
        Env::parse(b"agi-request: x\n\n"),
        Err(EnvError::BadKey { line: 1, offset: 3 })
    );
    assert_eq!(
        Env::parse(b"agi_request: x\nrequest: y\n\n"),
        Err(EnvError::BadKey {
            line: 2,
            offset: 15
        })
    );
    // typed fields must be numbers
    assert_eq!(
        Env::parse(b"agi_priority: two\n\n"),
        Err(EnvError::BadValue {
            line: 1,
            key: "agi_priority".into()
        })
    );
    assert!(matches!(
        Env::parse(b"agi_threadid: 99999999999999999999\n\n"),
        Err(EnvError::BadValue { .. })
    ));
    assert_eq!(
        Env::parse(b"agi_request: a\nagi_request: b\n\n"),
        Err(EnvError::DuplicateKey {
            line: 2,
            key: "agi_request".into()
        })
    );
    // over-long line: refused after MAX_LINE bytes, without reading the rest
    let mut long = b"agi_request: ".to_vec();
    long.extend(std::iter::repeat_n(b'x', 1 << 20));
    long.extend_from_slice(b"\n\n");
    let mut r = Cursor::new(&long);
    assert_eq!(
        Env::read_from(&mut r),
        Err(EnvError::LineTooLong { line: 1, offset: 0 })
    );
    assert!(r.position() as usize <= agi_callback::agi::env::MAX_LINE);
    // too many lines: the block bound
    let mut many = Vec::new();
    for i in 0..10_000 {
        many.extend_from_slice(format!("agi_k{i}: v\n").as_bytes());
    }
    assert!(matches!(
        Env::read_from(&mut Cursor::new(&many)),
        Err(EnvError::BlockTooLarge { .. })
    ));
    // binary garbage
    assert!(Env::read_from(&mut Cursor::new(&[0u8, 159, 146, 150, 10, 10][..])).is_err());
}

/// One command of a transcript, and the reply lines Asterisk gave.
struct Step {
    command: Vec<u8>,
    reply: Vec<u8>,
}

/// Reads `> command`, `< reply line` and `! event` lines.
fn transcript(name: &str) -> Vec<Step> {
    let text = fixture(name);
    let mut steps: Vec<Step> = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match line.split_at(2) {
            (b"> ", cmd) => steps.push(Step {
                command: cmd.to_vec(),
                reply: Vec::new(),
            }),
            (b"< ", r) => {
                let s = steps.last_mut().expect("reply before any command");
                s.reply.extend_from_slice(r);
                s.reply.push(b'\n');
            }
            (b"! ", _) => {} // a signal noted by the capture, not on the pipe
            _ => panic!("bad transcript line {:?}", String::from_utf8_lossy(line)),
        }
    }
    steps
}

/// Replays a transcript: the peer's stream is the env block then every
/// reply; checks each command line written and returns the replies read.
fn replay(env: &str, name: &str) -> Vec<Reply> {
    let steps = transcript(name);
    let mut input = fixture(env);
    for s in &steps {
        input.extend_from_slice(&s.reply);
    }
    let mut out = Vec::new();
    let mut session = Session::new(Cursor::new(input), &mut out);
    session.read_env().unwrap();
    let mut replies = Vec::new();
    for s in &steps {
        let cmd = Command::raw(&s.command).unwrap();
        replies.push(session.send(&cmd).unwrap());
        assert_eq!(session.last_raw(), &s.reply[..]);
    }
    // after the last reply, the peer is at EOF: closed, nothing more sent
    assert_eq!(session.send(&Command::noop()), Err(SessionError::Closed));
    assert_eq!(session.state(), State::Closed);
    drop(session);
    let mut expected = Vec::new();
    for s in &steps {
        expected.extend_from_slice(&s.command);
        expected.push(b'\n');
    }
    expected.extend_from_slice(b"NOOP\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&expected)
    );
    replies
}

fn ok(result: &str, data: Option<&str>) -> Reply {
    Reply::Success {
        result: result.as_bytes().to_vec(),
        data: data.map(|d| d.as_bytes().to_vec()),
        rest: vec![],
    }
}

#[test]
fn transcript_live_channel() {
    assert_eq!(
        replay("env-args.txt", "commands-live-channel.transcript"),
        vec![
            ok("0", None),
            ok("1", None),
            ok("1", None),
            ok("1", Some("QUEUED")),
            ok("1", None),
            ok("0", None),
        ]
    );
}

#[test]
fn transcript_after_caller_hangup() {
    assert_eq!(
        replay("env-hangup.txt", "commands-after-caller-hangup.transcript"),
        vec![
            Reply::DeadChannel,
            ok("1", None),
            ok("1", None),
            ok("1", Some("QUEUED")),
            Reply::DeadChannel,
            ok("0", None),
        ]
    );
}

#[test]
fn transcript_errors() {
    let r = replay("env-args.txt", "commands-errors.transcript");
    assert_eq!(r[0], ok("1", None));
    assert_eq!(r[1], ok("1", None));
    assert_eq!(r[2], Reply::InvalidCommand);
    match &r[3] {
        Reply::Usage(lines) => {
            assert_eq!(lines.len(), 2);
            assert!(lines[1].starts_with(b"Example return code: 200 result=1"));
        }
        other => panic!("want usage, got {other:?}"),
    }
    assert_eq!(r[4], ok("1", Some("a b")));
    assert_eq!(r[5], ok("0", None));
}

#[test]
fn typed_builders_write_what_asterisk_was_sent() {
    // The transcripts' command lines, rebuilt with the builders.
    let lines: Vec<Vec<u8>> = transcript("commands-live-channel.transcript")
        .into_iter()
        .chain(transcript("commands-errors.transcript"))
        .map(|s| s.command)
        .collect();
    for built in [
        Command::answer(),
        Command::hangup(),
        Command::noop(),
        Command::verbose(b"after wait", 1).unwrap(),
        Command::verbose(b"hello from agi", 1).unwrap(),
        Command::set_variable(b"CALLBACK_STATUS", b"QUEUED").unwrap(),
        Command::set_variable(b"X", b"a b").unwrap(),
        Command::get_variable(b"CALLBACK_STATUS").unwrap(),
        Command::get_variable(b"X").unwrap(),
    ] {
        assert!(
            lines.iter().any(|l| l == built.as_bytes()),
            "{:?} not in the transcripts",
            String::from_utf8_lossy(built.as_bytes())
        );
    }
    assert_eq!(
        Command::exec(b"Playback", b"tt-monkeys")
            .unwrap()
            .as_bytes(),
        b"EXEC Playback \"tt-monkeys\""
    );
    assert_eq!(
        Command::stream_file(b"beep", b"").unwrap().as_bytes(),
        b"STREAM FILE \"beep\" \"\""
    );
    assert_eq!(
        Command::get_full_variable(b"${CALLERID(num)}", None)
            .unwrap()
            .as_bytes(),
        b"GET FULL VARIABLE \"${CALLERID(num)}\""
    );
}

#[test]
fn typed_session_helpers_read_asterisk_replies() {
    // The replies Asterisk gave to SET VARIABLE and GET VARIABLE
    // (commands-live-channel.transcript), and to GET VARIABLE of an unset
    // variable (200 result=0).
    let mut input = fixture("env-args.txt");
    input.extend_from_slice(b"200 result=1\n200 result=1 (QUEUED)\n200 result=0\n");
    let mut out = Vec::new();
    let mut s = Session::new(Cursor::new(input), &mut out);
    s.read_env().unwrap();
    assert!(s.set_variable(b"CALLBACK_STATUS", b"QUEUED").unwrap());
    assert_eq!(
        s.get_variable(b"CALLBACK_STATUS").unwrap(),
        Some(b"QUEUED".to_vec())
    );
    assert_eq!(s.get_variable(b"UNSET").unwrap(), None);
    assert!(matches!(
        s.set_variable(b"BAD NAME", b"x"),
        Err(SessionError::Command(_))
    ));
    drop(s);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "SET VARIABLE CALLBACK_STATUS \"QUEUED\"\nGET VARIABLE CALLBACK_STATUS\nGET VARIABLE UNSET\n"
    );
}

#[test]
fn session_skips_hangup_events_and_trying_lines() {
    let mut input = fixture("env-hangup.txt");
    input.extend_from_slice(b"HANGUP\n100 result=0 Trying...\n200 result=0\n");
    let mut session = Session::new(Cursor::new(input), io::sink());
    session.read_env().unwrap();
    assert!(!session.hangup_seen());
    let r = session
        .send(&Command::raw(b"GOSUB ctx s 1").unwrap())
        .unwrap();
    assert_eq!(r, ok("0", None));
    assert!(session.hangup_seen());
}

#[test]
fn session_refuses_commands_before_env_and_after_a_bad_env() {
    let mut s = Session::new(Cursor::new(b"garbage\n\n".to_vec()), io::sink());
    assert_eq!(s.send(&Command::noop()), Err(SessionError::NotReady));
    assert!(matches!(s.read_env(), Err(SessionError::Env(_))));
    assert_eq!(s.send(&Command::noop()), Err(SessionError::Closed));
}

/// A writer whose reader went away: EPIPE.
struct Broken;
impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn epipe_and_eof_close_the_session() {
    let mut s = Session::new(Cursor::new(fixture("env-args.txt")), Broken);
    s.read_env().unwrap();
    assert_eq!(s.send(&Command::noop()), Err(SessionError::Closed));
    assert_eq!(s.state(), State::Closed);

    // EOF in the middle of a reply line
    let mut input = fixture("env-args.txt");
    input.extend_from_slice(b"200 res");
    let mut s = Session::new(BufReader::new(Cursor::new(input)), io::sink());
    s.read_env().unwrap();
    assert_eq!(s.send(&Command::noop()), Err(SessionError::Closed));

    // a reply that is no reply closes the session too
    let mut input = fixture("env-args.txt");
    input.extend_from_slice(b"hello\n200 result=1\n");
    let mut s = Session::new(Cursor::new(input), io::sink());
    s.read_env().unwrap();
    assert!(matches!(
        s.send(&Command::noop()),
        Err(SessionError::Reply(ReplyError::Malformed { .. }))
    ));
    assert_eq!(s.send(&Command::noop()), Err(SessionError::Closed));
}

#[test]
fn an_endless_usage_block_is_bounded() {
    let mut input = fixture("env-args.txt");
    input.extend_from_slice(b"520-Invalid command syntax.  Proper usage follows:\n");
    for _ in 0..10_000 {
        input.extend_from_slice(b"usage text usage text usage text\n");
    }
    let mut s = Session::new(Cursor::new(input), io::sink());
    s.read_env().unwrap();
    assert_eq!(s.send(&Command::noop()), Err(SessionError::ReplyTooLarge));
}

#[test]
fn eof_is_incomplete_for_the_parser() {
    assert_eq!(parse_reply(b""), Err(ReplyError::Incomplete));
    assert_eq!(parse_reply(b"200 result=1"), Err(ReplyError::Incomplete));
}

#[test]
fn a_usage_block_of_short_lines_is_read_in_linear_time() {
    // 32,000 one-byte lines fill MAX_REPLY; read once each (before, the
    // reply was parsed again after every line: about 5 * 10^8 steps)
    let mut input = fixture("env-args.txt");
    input.extend_from_slice(b"520-Invalid command syntax.  Proper usage follows:\n");
    for _ in 0..32_000 {
        input.extend_from_slice(b"x\n");
    }
    input.extend_from_slice(b"520 End of proper usage.\n");
    let mut s = Session::new(Cursor::new(input), io::sink());
    s.read_env().unwrap();
    let t = std::time::Instant::now();
    match s.send(&Command::noop()) {
        Ok(Reply::Usage(lines)) => assert_eq!(lines.len(), 32_000),
        other => panic!("{other:?}"),
    }
    // generous even for a debug build on a busy machine; the quadratic
    // reading took 74 s in a debug build here
    assert!(
        t.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn a_standard_block_is_whole_and_a_cut_one_is_not() {
    let env = Env::parse(&fixture("env-args.txt")).unwrap();
    assert_eq!(env.check_standard(), Ok(()));
    // a caller name "Bob\n\nX" ends the block after agi_calleridname
    let block = fixture("env-args.txt");
    let text = String::from_utf8(block).unwrap();
    let cut = text.replace("agi_calleridname: Ivan\n", "agi_calleridname: Bob\n\nX\n");
    let env = Env::read_from(&mut cut.as_bytes()).unwrap();
    assert_eq!(
        env.check_standard(),
        Err(EnvError::MissingKey {
            key: "agi_callingpres"
        })
    );
    // an argument before the standard keys
    let early = text.replace(
        "agi_request: dump.sh\n",
        "agi_arg_1: 1\nagi_request: dump.sh\n",
    );
    let early = early.replace("agi_arg_1: arg one\nagi_arg_2: two\n", "");
    let env = Env::parse(early.as_bytes()).unwrap();
    assert_eq!(
        env.check_standard(),
        Err(EnvError::ArgsTooEarly { line: 1 })
    );
}

#[test]
fn env_lines_left_on_the_pipe_prove_a_cut_block() {
    let text = String::from_utf8(fixture("env-args.txt")).unwrap();
    // a forged tail: every standard key after the name, then the block's end
    let (head, tail) = text.split_once("agi_calleridname: Ivan\n").unwrap();
    let forged = format!("{head}agi_calleridname: Bob\n{tail}");
    let input = format!("{forged}{tail}200 result=1\n");
    let mut s = Session::new(input.as_bytes(), io::sink());
    let env = s.read_env().unwrap();
    assert_eq!(env.check_standard(), Ok(()), "the forged block looks whole");
    assert_eq!(
        s.check_nothing_cut(),
        Err(SessionError::Env(EnvError::CutShort))
    );
    assert_eq!(s.send(&Command::noop()), Err(SessionError::Closed));
    // replies written ahead of time are no env lines
    let mut input = fixture("env-args.txt");
    input.extend_from_slice(b"200 result=1\n520-Invalid command syntax.  Proper usage follows:\nagi x\n520 End of proper usage.\n");
    let mut s = Session::new(Cursor::new(input), io::sink());
    s.read_env().unwrap();
    assert_eq!(s.check_nothing_cut(), Ok(()));
    assert!(s.send(&Command::noop()).is_ok());
    assert!(matches!(s.send(&Command::noop()), Ok(Reply::Usage(_))));
}
