#!/usr/bin/env bash
# End-to-end suite against a real Asterisk 22.
#
# Builds (once, cached in $E2E_CACHE, default /var/cache/agi-callback-e2e) a
# Debian-unstable chroot with Asterisk 22, installs the release binaries, the
# agi-bin/ dialplan and a test config, starts Asterisk as the asterisk user,
# runs the scenarios, stops Asterisk and unmounts. Exits non-zero on any
# failure; a missing prerequisite is a failure, never a skip.
#
# Needs root (chroot, mount). Run: sudo bash tests/e2e/run.sh
set -euo pipefail

TOP=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${E2E_CACHE:-/var/cache/agi-callback-e2e}
ROOT=$CACHE/root
WORK=$(mktemp -d /tmp/agi-callback-e2e.XXXXXX)
SPOOL=$ROOT/var/spool/asterisk
LOG=$ROOT/var/log/asterisk/messages.log
CBLOG=$ROOT/var/log/asterisk/callback.log
CDR=$ROOT/var/log/asterisk/cdr-csv/Master.csv
AGIDIR=$ROOT/usr/share/asterisk/agi-bin
PASSED=0
FAILED=0

die() { echo "e2e: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (chroot and mount)"

if ! command -v debootstrap >/dev/null; then
    apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null \
        || die "debootstrap is missing and could not be installed"
fi

# --- the chroot ---------------------------------------------------------------
if [ ! -x "$ROOT/usr/sbin/asterisk" ]; then
    echo "e2e: building the Asterisk chroot in $ROOT (about a minute)"
    mkdir -p "$CACHE"
    rm -rf "$CACHE/root.new"
    debootstrap --variant=minbase --include=asterisk,espeak-ng sid "$CACHE/root.new" \
        >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log"; die "debootstrap failed"; }
    mv "$CACHE/root.new" "$ROOT"
fi

# A chroot cached before the phone alerts has no espeak-ng yet. (The
# mirror's Release file may be older than its Valid-Until: debootstrap does
# not check that, apt does.)
if [ ! -x "$ROOT/usr/bin/espeak-ng" ]; then
    echo "e2e: installing espeak-ng in the chroot"
    chroot "$ROOT" sh -c 'apt-get -o Acquire::Check-Valid-Until=false update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng' >"$WORK/espeak.log" 2>&1 \
        || { tail -20 "$WORK/espeak.log"; die "cannot install espeak-ng in the chroot"; }
fi

# With E2E_DEB=path/to/agi-callback.deb the suite runs against the
# installed package: its binaries (/usr/bin, Asterisk's agi-bin), its
# configs in /etc/asterisk (edited as an admin would) and its dialplan
# files #included as the README says; then it is removed and purged.
if [ -n "${E2E_DEB:-}" ]; then
    [ -f "$E2E_DEB" ] || die "E2E_DEB=$E2E_DEB: no such file"
    chroot "$ROOT" dpkg -P agi-callback >/dev/null 2>&1 || true
    # what a run without the package left in /etc/asterisk is no admin's
    # edit: out of dpkg's way, so it installs the package's own files
    for f in callback.json alerts.json extensions_callback.conf extensions_alert.conf; do
        rm -f "$ROOT/etc/asterisk/$f"
    done
    cp "$E2E_DEB" "$ROOT/tmp/agi-callback.deb"
    chroot "$ROOT" dpkg -i --force-confnew /tmp/agi-callback.deb </dev/null >"$WORK/dpkg.log" 2>&1 \
        || { cat "$WORK/dpkg.log"; die "dpkg -i failed"; }
    rm -f "$ROOT/tmp/agi-callback.deb"
    echo "e2e: installed $(basename "$E2E_DEB") in the chroot"
    CALLBACK=$AGIDIR/callback
    ALERT=$AGIDIR/alert
    AUTODIAL=$ROOT/usr/bin/autodial
    CHROOT_AUTODIAL=/usr/bin/autodial
else
    echo "e2e: building release binaries"
    (cd "$TOP" && cargo build --release --bins -q) || die "cargo build failed"
    CALLBACK=$TOP/target/release/callback
    AUTODIAL=$TOP/target/release/autodial
    ALERT=$TOP/target/release/alert
    CHROOT_AUTODIAL=/usr/local/bin/autodial
fi

ast() { chroot "$ROOT" asterisk -rx "$1"; }

cleanup() {
    set +e
    [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null
    [ -n "${HB_PID:-}" ] && kill "$HB_PID" 2>/dev/null
    if chroot "$ROOT" asterisk -rx "core show version" >/dev/null 2>&1; then
        chroot "$ROOT" asterisk -rx "core stop now" >/dev/null 2>&1
    fi
    for _ in $(seq 1 50); do
        [ -n "${AST_PID:-}" ] && kill -0 "$AST_PID" 2>/dev/null || break
        sleep 0.2
    done
    [ -n "${AST_PID:-}" ] && kill -9 "$AST_PID" 2>/dev/null
    mountpoint -q "$ROOT/dev" && umount "$ROOT/dev"
    mountpoint -q "$ROOT/proc" && umount "$ROOT/proc"
    rm -rf "$WORK"
}
trap cleanup EXIT

# A previous run killed mid-way may have left Asterisk or mounts behind:
# stop only processes whose root is this chroot.
for p in /proc/[0-9]*; do
    if [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ]; then
        kill -9 "${p#/proc/}" 2>/dev/null || true
    fi
done
sleep 0.5
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"

# --- configuration --------------------------------------------------------------
cat >"$ROOT/etc/asterisk/modules.conf" <<'EOF'
[modules]
autoload=no
load => res_timing_timerfd.so
load => bridge_simple.so
load => pbx_config.so
load => pbx_spool.so
load => res_speech.so
load => res_agi.so
load => app_playback.so
load => app_dial.so
load => app_stack.so
load => app_echo.so
load => app_verbose.so
load => app_userevent.so
load => app_read.so
load => app_senddtmf.so
load => app_cdr.so
load => func_strings.so
load => func_callerid.so
load => func_cut.so
load => func_logic.so
load => func_channel.so
load => func_cdr.so
load => cdr_csv.so
load => format_wav.so
load => format_gsm.so
load => format_pcm.so
load => codec_ulaw.so
load => codec_gsm.so
EOF
cat >"$ROOT/etc/asterisk/logger.conf" <<'EOF'
[general]
[logfiles]
messages.log => notice,warning,error,verbose(5)
EOF
cat >"$ROOT/etc/asterisk/extensions.conf" <<'EOF'
[general]
static=yes
writeprotect=yes
[globals]
#include extensions_callback.conf
#include extensions_alert.conf
#include extensions_test.conf
EOF
# users.conf is deprecated and only makes pbx_config warn.
rm -f "$ROOT/etc/asterisk/users.conf"
[ -n "${E2E_DEB:-}" ] || install -m 0644 "$TOP/agi-bin/extensions_callback.conf" "$ROOT/etc/asterisk/"
install -m 0644 "$TOP/tests/e2e/extensions_test.conf" "$ROOT/etc/asterisk/"
[ -n "${E2E_DEB:-}" ] || install -m 0644 "$TOP/agi-bin/extensions_alert.conf" "$ROOT/etc/asterisk/"
# Phone alerts: every contact a number of its own in [alert-phones]
# (21XX acks, 22XX never presses, 23XX never answers, 24XX busy).
cat >"$ROOT/etc/asterisk/alerts.json" <<'EOF'
{
  "call": {"channel": "Local/{number}@alert-phones/n",
           "callerid": "\"Monitoring\" <84955556677>", "wait_time": 4},
  "contacts": {
    "c2101": {"number": "2101"}, "c2102": {"number": "2102"},
    "c2301": {"number": "2301"}, "c2103": {"number": "2103"},
    "c2201": {"number": "2201"}, "c2104": {"number": "2104"},
    "c2401": {"number": "2401"}, "c2105": {"number": "2105"},
    "c2302": {"number": "2302"}, "c2106": {"number": "2106"},
    "c2107": {"number": "2107"}, "c2108": {"number": "2108"},
    "c2303": {"number": "2303"}, "c2402": {"number": "2402"},
    "c2109": {"number": "2109"}, "c2110": {"number": "2110"},
    "c2111": {"number": "2111"}, "c2112": {"number": "2112"},
    "c2304": {"number": "2304"}, "c2202": {"number": "2202"},
    "c2114": {"number": "2114"}, "c2305": {"number": "2305"},
    "c2116": {"number": "2116"}, "c2203": {"number": "2203"},
    "c2117": {"number": "2117", "numbers": ["89160002117"], "pin": "4711"}
  },
  "line": {"rewrite": [{"prefix": "+7", "replace": "8"}, {"prefix": "7", "replace": "8", "digits": 11}]},
  "heartbeats": {
    "e2ehb": {"timeout_seconds": 10, "chain": "s11",
              "text": "The end to end heartbeat has stopped."}
  },
  "schedules": {
    "e2eoc": {"time_zone": "Europe/Moscow",
              "layers": [{"name": "daily", "contacts": ["c2111"], "shift": "1d", "start": "2026-01-01T10:00"}]},
    "dba": {"time_zone": "UTC",
            "layers": [{"name": "weekly", "contacts": ["c2116"], "shift": "1w", "start": "2026-01-01T00:00Z"}]},
    "e2eov": {"time_zone": "UTC",
              "layers": [{"name": "weekly", "contacts": ["c2304"], "shift": "1w", "start": "2026-01-01T00:00Z"}]}
  },
  "routes": [{"match": {"team": "db"}, "chain": "amdb"}, {"match": {"team": "ops"}, "chain": "amops"}],
  "chains": {
    "s1": {"steps": [{"contacts": ["c2101"]}, {"contacts": ["c2102"], "after_seconds": 10}]},
    "s2": {"steps": [{"contacts": ["c2301"]}, {"contacts": ["c2103"], "after_seconds": 8}]},
    "s3": {"steps": [{"contacts": ["c2201"]}, {"contacts": ["c2104"], "after_seconds": 8}]},
    "s4": {"steps": [{"contacts": ["c2401"]}, {"contacts": ["c2105"], "after_seconds": 8}]},
    "s5": {"steps": [{"contacts": ["c2302"]}, {"contacts": ["c2106"], "after_seconds": 12}]},
    "s6": {"steps": [{"contacts": ["c2107", "c2108"]}]},
    "s8": {"steps": [{"contacts": ["c2303"]}, {"contacts": ["c2402"], "after_seconds": 5}]},
    "s9": {"steps": [{"schedules": ["e2eoc"]}]},
    "s11": {"steps": [{"contacts": ["c2202"]}, {"contacts": ["c2114"], "after_seconds": 40}]},
    "s10": {"steps": [{"schedules": ["e2eov"]}, {"schedules": ["e2eov"], "after_seconds": 12}]},
    "s12": {"steps": [{"contacts": ["c2203"], "after_seconds": 90}]},
    "amdb": {"steps": [{"contacts": ["c2109"]}]},
    "amops": {"steps": [{"contacts": ["c2110"], "after_seconds": 20}]}
  },
  "speech": {"engine": "espeak-ng", "language": "en", "voices": {"en": "en-us"}},
  "ack_digit": "1",
  "state_dir": "/var/lib/asterisk/autodial",
  "spool_dir": "/var/spool/asterisk"
}
EOF

# The test config: the sample's shape, with Local channels for phones and trunk.
write_config() { # $1: extra JSON members (with a leading comma) or empty
    cat >"$ROOT/etc/asterisk/callback.json" <<EOF
{
  "permit": ["89105647899", "89105640002", "89105640004", "89105640005"],
  "rewrite": [{"prefix": "+7", "replace": "8"}, {"prefix": "7", "replace": "8", "digits": 11}],
  "call": {
    "channel": "Local/{number}@fake-phones",
    "callerid": "\"Callback\" <84955556677>",
    "context": "callback-menu",
    "wait_time": 20,
    "archive": true,
    "variables": {"CALLBACK_NUMBER": "{number}", "CALLBACK_TECH": "Local", "CALLBACK_TRUNK": "fake-trunk"}
  },
  "debug": true$1
}
EOF
    chown asterisk:asterisk "$ROOT/etc/asterisk/callback.json" 2>/dev/null \
        || chroot "$ROOT" chown asterisk:asterisk /etc/asterisk/callback.json
}
write_config ""

if [ -z "${E2E_DEB:-}" ]; then
    install -m 0755 "$CALLBACK" "$AGIDIR/callback"
    install -m 0755 "$ALERT" "$AGIDIR/alert"
    install -m 0755 "$AUTODIAL" "$ROOT/usr/local/bin/autodial"
fi
rm -rf "$ROOT/var/lib/asterisk/autodial"
rm -rf "$SPOOL/outgoing" "$SPOOL/outgoing_done" "$SPOOL/tmp" "$ROOT/var/log/asterisk"
mkdir -p "$SPOOL/outgoing" "$SPOOL/tmp" "$ROOT/var/log/asterisk/cdr-csv"
chroot "$ROOT" chown -R asterisk:asterisk /etc/asterisk /var/spool/asterisk /var/lib/asterisk \
    /var/log/asterisk /var/run/asterisk 2>/dev/null \
    || chroot "$ROOT" sh -c 'mkdir -p /var/run/asterisk && chown -R asterisk:asterisk /etc/asterisk /var/spool/asterisk /var/lib/asterisk /var/log/asterisk /var/run/asterisk'

# --- start ----------------------------------------------------------------------
chroot "$ROOT" asterisk -U asterisk -G asterisk -f -n >"$WORK/asterisk.out" 2>&1 &
AST_PID=$!
for _ in $(seq 1 100); do
    ast "core show version" >/dev/null 2>&1 && break
    sleep 0.2
done
ast "core show version" || { cat "$WORK/asterisk.out"; die "Asterisk did not start"; }
ast "dialplan reload" >/dev/null
sleep 1

# --- helpers --------------------------------------------------------------------
pass() { echo "PASS: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL: $*"; FAILED=$((FAILED + 1)); }

# wait_for FILE PATTERN SECONDS: true once grep -E finds PATTERN in FILE.
wait_for() {
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -le $deadline ]; do
        grep -qE -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.3
    done
    return 1
}
count() { grep -cE -- "$2" "$1" 2>/dev/null || true; }

# A caller ringing the callback number: a Local channel into [test-caller];
# WaitTime is how long the caller lets it ring before giving up.
ring() { # $1 number, $2 wait seconds, $3 name
    "$AUTODIAL" --spool-dir "$SPOOL" call --channel "Local/$1@test-caller" \
        --application Wait --data 30 --wait-time "$2" --name "$3" >/dev/null
}
# Wait until outgoing/ has no file matching $1.
wait_gone() {
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -le $deadline ]; do
        compgen -G "$SPOOL/outgoing/$1" >/dev/null || return 0
        sleep 0.3
    done
    return 1
}

# --- 8 (first, as it is about loading): the dialplan loads without warnings ---
if grep -E "WARNING|ERROR" "$LOG" >"$WORK/load-warnings"; [ -s "$WORK/load-warnings" ]; then
    fail "8: warnings while loading:"; cat "$WORK/load-warnings"
elif menu=$(ast "dialplan show callback-menu") && auto=$(ast "dialplan show autocaller") \
    && grep -q "vm-enter-num-to-call" <<<"$menu" && grep -q "Gosub(autocaller-dial" <<<"$auto"; then
    pass "8: dialplan loaded with no warning (callback-menu, autocaller present)"
else
    fail "8: dialplan contexts missing"
fi

# --- 1: permitted caller rings, is called back, dials out from the menu -------
ring 89105647899 10 s1-caller
if wait_for "$LOG" "FAKE-TRUNK dialled=84951234567 callerid=89105647899" 40; then
    if grep -q "89105647899 QUEUED" "$CBLOG" && grep -q "Executing \[s@callback-menu:1\]" "$LOG"; then
        pass "1: callback queued, menu reached, 84951234567 dialled with caller ID 89105647899"
    else
        fail "1: trunk reached but callback log or menu missing"
    fi
else
    fail "1: the fake trunk was never reached"; tail -40 "$LOG"
fi

# --- 2: the caller gives up after 1 s while the AGI still runs ---------------
# The AGI is held on the spool's callback lock (taken here for 3.5 s, under
# the callback's own 5 s bound) until well after the caller hung up.
mkdir -p "$SPOOL/callback-state"
chroot "$ROOT" chown asterisk:asterisk /var/spool/asterisk/callback-state
touch "$SPOOL/callback-state/lock"
chroot "$ROOT" chown asterisk:asterisk /var/spool/asterisk/callback-state/lock
flock "$SPOOL/callback-state/lock" sleep 3.5 &
LOCK_PID=$!
sleep 0.3
ring 89105640002 1 s2-caller
wait "$LOCK_PID" || true
if wait_for "$LOG" "Executing \[89105640002@fake-phones:1\]" 30 \
    && grep -q "\[INFO\] 89105640002 QUEUED" "$CBLOG"; then
    # Asterisk's own order of events: the caller's call expired (hung up),
    # then the still-running AGI reported QUEUED and ended with the hang-up
    # result (4).
    gone=$(grep -n "Queued call to Local/89105640002@test-caller expired" "$LOG" | head -1 | cut -d: -f1)
    said=$(grep -n "test-caller.*AGI Script callback completed, returning 4" "$LOG" | head -1 | cut -d: -f1)
    queued=$(grep -n "callback: 89105640002 QUEUED" "$LOG" | head -1 | cut -d: -f1)
    once=$(count "$CBLOG" "\[INFO\] 89105640002 QUEUED")
    legs=$(count "$LOG" "Executing \[89105640002@fake-phones:1\]")
    if [ -n "$gone" ] && [ -n "$said" ] && [ -n "$queued" ] && [ "$gone" -lt "$queued" ] \
        && [ "$queued" -lt "$said" ] && [ "$once" = 1 ] && [ "$legs" = 1 ]; then
        pass "2: caller gave up at 1 s while the AGI ran; callback still queued (once) and placed"
    else
        fail "2: expired@${gone:-none} queued@${queued:-none} agi-end@${said:-none} QUEUED=$once legs=$legs"
    fi
else
    fail "2: no callback after the caller gave up"; tail -30 "$CBLOG"
fi

# --- 3: a caller not on the permit list -----------------------------------------
ring 89990000000 5 s3-caller
if wait_for "$LOG" "CALLBACK_STATUS=DENIED" 20 && grep -q "89990000000 DENIED" "$CBLOG"; then
    sleep 1
    if compgen -G "$SPOOL/outgoing/callback-89990000000*" >/dev/null; then
        fail "3: a call file was queued for a denied caller"
    else
        pass "3: DENIED reached the dialplan; nothing queued"
    fi
else
    fail "3: DENIED not seen"
fi

# --- 4: twenty simultaneous calls from one number ---------------------------------
pids=()
for i in $(seq 1 20); do ring 89105640004 5 "s4-caller-$i" & pids+=($!); done
wait "${pids[@]}"
wait_for "$LOG" "Executing \[89105640004@fake-phones:1\]" 30 || true
sleep 5
q=$(count "$CBLOG" "\[INFO\] 89105640004 QUEUED")
d=$(count "$CBLOG" "\[INFO\] 89105640004 DUPLICATE")
legs=$(count "$LOG" "Executing \[89105640004@fake-phones:1\]")
if [ "$q" = 1 ] && [ "$d" = 19 ] && [ "$legs" = 1 ]; then
    pass "4: 20 simultaneous calls: 1 QUEUED, 19 DUPLICATE, 1 callback leg"
else
    fail "4: QUEUED=$q DUPLICATE=$d callback legs=$legs"
fi

# --- 5: invalid input three times: goodbye -------------------------------------
ring 89105640005 10 s5-caller
if wait_for "$LOG" "Executing \[goodbye@callback-menu:1\]" 60; then
    inv=$(count "$LOG" "Executing \[i@callback-menu:1\]")
    if [ "$inv" = 3 ]; then
        pass "5: three invalid inputs, then goodbye"
    else
        fail "5: goodbye after $inv invalid inputs (want 3)"
    fi
else
    fail "5: no goodbye"
fi

# --- 6: autodial --in 5s plays the alert only after 5 s; failed extension -------
t0=$(date +%s)
"$AUTODIAL" --spool-dir "$SPOOL" call --channel Local/admin@fake-phones \
    --context monitoring-alert --set ALERT_PROMPT=tt-somethingwrong --archive \
    --in 5s --name alert-in-5s >/dev/null
early=0
while [ $(($(date +%s) - t0)) -lt 4 ]; do
    grep -q "Executing \[admin@fake-phones:1\]" "$LOG" && early=1
    sleep 0.3
done
if [ "$early" = 0 ] && wait_for "$LOG" "Executing \[s@monitoring-alert:3\].*tt-somethingwrong" 20; then
    t1=$(date +%s)
    pass "6a: alert played after $((t1 - t0)) s (scheduled 5 s), not before 4 s"
else
    fail "6a: alert early=$early or never played"
fi
"$AUTODIAL" --spool-dir "$SPOOL" call --channel Local/noanswer@fake-phones \
    --context monitoring-alert --set ALERT_TO=noanswer --wait-time 3 --archive \
    --name alert-noanswer >/dev/null
if wait_for "$LOG" "Monitoring alert to noanswer failed: REASON=3" 30; then
    pass "6b: failed extension ran with REASON=3 (no answer)"
else
    fail "6b: failed extension with REASON=3 not seen"; grep -E "REASON|noanswer" "$LOG" | tail -5
fi

# --- 7: fail-over ---------------------------------------------------------------
"$AUTODIAL" --spool-dir "$SPOOL" call --channel Local/1@autocaller \
    --context monitoring-alert --set FIRST_NUMBER=noanswer --set SECOND_NUMBER=second \
    --set AUTOCALLER_RING=3 --set CALLBACK_TECH=Local --set CALLBACK_TRUNK=fake-phones \
    --archive --name failover >/dev/null
if wait_for "$LOG" "Executing \[second@fake-phones:1\]" 40 \
    && grep -q "Fail-over: noanswer gave NOANSWER, calling second" "$LOG"; then
    pass "7: first number NOANSWER, second number called"
else
    fail "7: fail-over did not reach the second number"
fi

# --- pbx_spool read every published file without a warning, and check agrees --
wait_gone "alert-*" 30 || true
wait_gone "failover" 30 || true
wait_gone "callback-*" 40 || true
# (NOTICEs about call progress are normal; these are what a bad file earns.)
if grep -E "pbx_spool" "$LOG" \
    | grep -E "WARNING|Unknown keyword|Syntax error|Malformed|Invalid|should be in form|Line too long" \
    >"$WORK/spool-warnings"; [ -s "$WORK/spool-warnings" ]; then
    fail "spool: Asterisk warned about call files:"; cat "$WORK/spool-warnings"
else
    pass "spool: Asterisk read every published call file without a warning"
fi
files=$(compgen -G "$SPOOL/outgoing_done/*" || true)
if [ -n "$files" ]; then
    # shellcheck disable=SC2086
    if "$AUTODIAL" check $files >"$WORK/check.out" 2>&1; then
        pass "check: 'autodial check' passes the $(echo "$files" | wc -w) files Asterisk archived"
    else
        fail "check: autodial check disagrees with Asterisk:"; cat "$WORK/check.out"
    fi
else
    fail "check: no archived call files to check"
fi

# --- 9: check agrees with Asterisk on a bad file -----------------------------
# Every line pbx_spool complains about must be flagged by `autodial check`
# with the same line number (check also flags the '#' that silently cuts
# the Callerid, which Asterisk does not mention).
printf '%s\n' 'Channel: Local/admin@fake-phones' 'EarlyMedia: yes' 'no colon here' \
    ' Channel: x' 'Context: monitoring-alert' 'Extension: s' 'Priority: 1' \
    'Callerid: Room #5 <100>' 'WaitTime: soon' 'Set: NOEQUALS' >"$WORK/bad.call"
cp "$WORK/bad.call" "$SPOOL/tmp/bad.call"
chroot "$ROOT" chown asterisk:asterisk /var/spool/asterisk/tmp/bad.call
mv "$SPOOL/tmp/bad.call" "$SPOOL/outgoing/bad.call"
wait_for "$LOG" "Invalid waittime at line [0-9]+ of .*bad.call" 15 || true
ast_lines=$(grep -oE "at line [0-9]+ of /var/spool/asterisk/outgoing/bad.call" "$LOG" \
    | grep -oE "[0-9]+" | sort -un | tr '\n' ' ' || true)
rc=0
"$AUTODIAL" check "$WORK/bad.call" >"$WORK/bad.out" 2>&1 || rc=$?
missing=""
for n in $ast_lines; do
    grep -q "bad.call:line $n:" "$WORK/bad.out" || missing="$missing $n"
done
nlines=$(wc -w <<<"$ast_lines")
if [ "$nlines" -ge 4 ] && [ -z "$missing" ] && [ "$rc" = 1 ]; then
    pass "9: autodial check flags every line Asterisk warned about (lines ${ast_lines% }) and exits 1"
else
    fail "9: Asterisk lines: ${ast_lines:-none}; check missed:${missing:- none}; exit $rc"
    cat "$WORK/bad.out"
fi
wait_gone "bad.call" 30 || true

# --- 10: what Asterisk 22 does with a NUL byte, '\;;' and a zero RetryTime ---
# Line 2 holds a NUL: Asterisk skips it as over-long and swallows line 3
# (WaitTime: 0 is never read), so its own line numbers shift by one after
# it (RetryTime: 0 at line 4 is "line 3" for Asterisk). Data 'hello\;;world'
# is read as 'hello;'. `autodial check` must say each of these.
printf 'Channel: Local/admin@fake-phones\nSet: A=1\0x\nWaitTime: 0\nRetryTime: 0\nApplication: Verbose\nData: 1,E2E-TEN hello\\;;world\n' \
    >"$WORK/nul.call"
cp "$WORK/nul.call" "$SPOOL/tmp/nul.call"
chroot "$ROOT" chown asterisk:asterisk /var/spool/asterisk/tmp/nul.call
mv "$SPOOL/tmp/nul.call" "$SPOOL/outgoing/nul.call"
wait_for "$LOG" "E2E-TEN hello" 20 || true
"$AUTODIAL" check "$WORK/nul.call" >"$WORK/nul.out" 2>&1 || true
seen=""
grep -q "Skipping extremely long line at line 2 of .*nul.call" "$LOG" && seen="$seen skip2"
grep -q "Invalid retrytime at line 3 of .*nul.call" "$LOG" && seen="$seen retry3"
grep -q "Invalid waittime at line [0-9]* of .*nul.call" "$LOG" || seen="$seen no-waittime"
grep -qE "E2E-TEN hello;$" "$LOG" && seen="$seen said-hello;"
said=""
grep -q "nul.call:line 2: error: a NUL byte at column 9.*line 3 with it" "$WORK/nul.out" && said="$said nul2"
grep -q "nul.call:line 3: error: skipped by Asterisk as the tail of line 2" "$WORK/nul.out" && said="$said tail3"
grep -q "nul.call:line 4: error: RetryTime 0 is below 1" "$WORK/nul.out" && said="$said retry4"
grep -q 'nul.call:line 6: error: .*reads only "Data: 1,E2E-TEN hello;"' "$WORK/nul.out" && said="$said data6"
if [ "$seen" = " skip2 retry3 no-waittime said-hello;" ] && [ "$said" = " nul2 tail3 retry4 data6" ]; then
    pass "10: NUL line skipped with the next, 'hello\\;;world' read as 'hello;', RetryTime 0 invalid: Asterisk and check agree"
else
    fail "10: Asterisk:${seen:- nothing}; check:${said:- nothing}"
    grep "nul.call" "$LOG" | tail -5; cat "$WORK/nul.out"
fi
wait_gone "nul.call" 30 || true

# --- phone alerts (issue 11): eight scenarios at once, on Local phones ------
# `autodial alert` runs inside the chroot (as root it becomes the spool's
# owner, asterisk), so the paths it stores are the ones Asterisk sees.
ALOG=$ROOT/var/log/asterisk/autodial-alert.log
adial() { chroot "$ROOT" "$CHROOT_AUTODIAL" "$@"; }
ashow() { adial alert show "$1" --json; }
# outcome ID CONTACT: that contact's call outcome
outcome() { ashow "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(' '.join(c['outcome'] for c in d['calls'] if c['contact']=='$2'))"; }
field() { ashow "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['$2'])"; }
# The webhook receiver, in the chroot too (as root it becomes asterisk).
echo "e2e-token-$$" >"$ROOT/etc/asterisk/autodial-serve.token"
# start_serve PORT LOG: a receiver on 127.0.0.1:PORT, its pid in
# STARTED_PID once it answers /healthz.
start_serve() {
    chroot "$ROOT" "$CHROOT_AUTODIAL" serve --listen "127.0.0.1:$1" \
        --token-file /etc/asterisk/autodial-serve.token 2>"$2" &
    STARTED_PID=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
}
start_serve 9095 "$WORK/serve.log"
SERVE_PID=$STARTED_PID
AM=$TOP/fixtures/alertmanager-0.25
post() { curl -sS -H "Authorization: Bearer e2e-token-$$" -H 'Content-Type: application/json' \
    --data-binary "@$AM/$1" http://127.0.0.1:9095/alertmanager; }
t0=$SECONDS
# the DiskFull group (team db): a phone that presses 1; then a replica's copy
r1=$(post 01-firing-group-two-alerts.json) || true
r2=$(post 01-firing-group-two-alerts.json) || true
# the HostDown group (team ops): its call 20 s later; resolved before that
r3=$(post 02-firing-group-cyrillic-summary.json) || true
# the on-call line (issue 20): c2305 (never answers) covers dba by an
# override; a call to 7778 rings c2305, then ONCALL_NEXT_DIAL, the layer's
# c2116
adial oncall override add --schedule dba --contact c2305 --from now \
    --to "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" >"$WORK/override-line.out" 2>&1 \
    || { fail "on-call line: override add failed"; cat "$WORK/override-line.out"; }
"$AUTODIAL" --spool-dir "$SPOOL" call --channel Local/7778@e2e-oncall --application Wait --data 20 \
    --wait-time 30 --name e2e-oncall-line.call >/dev/null || fail "on-call line: the call was not queued"
for sc in s1 s2 s3 s4 s5 s6 s8 s9 s10; do
    adial alert raise --id "e2e-$sc" --text "Disk full on db1, scenario $sc" --chain "$sc" >"$WORK/raise-$sc.out" 2>&1 \
        || { fail "alert $sc: raise failed"; cat "$WORK/raise-$sc.out"; }
done
# the alert line (issue 20): c2117 calls 7777 from +79160002117 (one of
# their numbers after line.rewrite), types the PIN and presses 1 on the
# newest alert, e2e-s12, whose only call is still pending (due in 90 s)
adial alert raise --id e2e-s12 --text "Replica lag on db2, scenario s12" --chain s12 >"$WORK/raise-s12.out" 2>&1 \
    || { fail "alert line: raise failed"; cat "$WORK/raise-s12.out"; }
adial alert prepare >"$WORK/prepare.out" 2>&1 || { fail "alert line: prepare failed"; cat "$WORK/prepare.out"; }
"$AUTODIAL" --spool-dir "$SPOOL" call --channel Local/7777@e2e-line --context e2e-line-phone \
    --wait-time 30 --name e2e-alert-line.call >/dev/null || fail "alert line: the call was not queued"
# 10: c2112 covers e2eov while the alert is firing: its second step (at
# 12 s) is re-planned to c2112; the first (ringing now) stays c2304's
adial oncall override add --schedule e2eov --contact c2112 --from now \
    --to "$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)" >"$WORK/override.out" 2>&1 \
    || { fail "on call 10: override add failed"; cat "$WORK/override.out"; }
# 5: resolved 3 s after the raise, before its second step (at 12 s)
sleep 3
adial alert resolve e2e-s5 >/dev/null || fail "alert 5: resolve failed"
r5=$(post 05-other-group-resolved.json) || true
# wait for every scenario's end (the longest: 2201 listens to all three
# rounds of the message without pressing, about 30 s)
while [ $((SECONDS - t0)) -lt 90 ]; do
    done_all=1
    [ "$(outcome e2e-s3 c2201)" = answered_no_ack ] || done_all=0
    [ "$(field e2e-s8 state)" = unacknowledged ] || done_all=0
    [ "$(outcome e2e-s4 c2105)" = answered_acked ] || done_all=0
    [ "$(outcome e2e-s2 c2103)" = answered_acked ] || done_all=0
    [ "$(outcome e2e-s9 c2111)" = answered_acked ] || done_all=0
    [ "$(outcome e2e-s10 c2112)" = answered_acked ] || done_all=0
    [ "$(field e2e-s12 acked_via)" = line ] || done_all=0
    [ $((SECONDS - t0)) -ge 20 ] || done_all=0   # past every later step
    [ "$done_all" = 1 ] && break
    sleep 1
done
sleep 2
called() { grep -c "Executing \[$1@alert-phones:1\]" "$LOG" || true; }
# 1: the first contact acks; the second step is never called
if [ "$(field e2e-s1 state)" = acked ] && [ "$(field e2e-s1 acked_by)" = c2101 ] \
    && [ "$(outcome e2e-s1 c2101)" = answered_acked ] && [ "$(outcome e2e-s1 c2102)" = cancelled ] \
    && [ "$(called 2101)" = 1 ] && [ "$(called 2102)" = 0 ] \
    && grep -q "Alert e2e-s1 call [0-9]*: ACKED" "$LOG"; then
    pass "alert 1: the first contact pressed 1: acked by c2101, the second step never called"
else
    fail "alert 1: state=$(field e2e-s1 state) by=$(field e2e-s1 acked_by) 2101=$(outcome e2e-s1 c2101)/$(called 2101) 2102=$(outcome e2e-s1 c2102)/$(called 2102)"
fi
# 2: no answer, then the second step at its offset acks
if [ "$(outcome e2e-s2 c2301)" = no_answer ] && [ "$(outcome e2e-s2 c2103)" = answered_acked ] \
    && [ "$(field e2e-s2 acked_by)" = c2103 ] \
    && grep -q "Alert e2e-s2 call [0-9]* failed: REASON=3" "$LOG"; then
    pass "alert 2: first contact no_answer (REASON=3), the second called at its offset and acked"
else
    fail "alert 2: 2301=$(outcome e2e-s2 c2301) 2103=$(outcome e2e-s2 c2103) by=$(field e2e-s2 acked_by)"
fi
# 3: answered without the key; the next step is called
if [ "$(outcome e2e-s3 c2201)" = answered_no_ack ] && [ "$(outcome e2e-s3 c2104)" = answered_acked ] \
    && grep -q "Alert e2e-s3 call [0-9]*: NOACK" "$LOG" && [ "$(called 2104)" = 1 ]; then
    pass "alert 3: answered without the key (NOACK, answered_no_ack); the next step was called and acked"
else
    fail "alert 3: 2201=$(outcome e2e-s3 c2201) 2104=$(outcome e2e-s3 c2104)"
fi
# 4: busy
if [ "$(outcome e2e-s4 c2401)" = busy ] && grep -q "Alert e2e-s4 call [0-9]* failed: REASON=5" "$LOG"; then
    pass "alert 4: a busy phone is recorded busy (REASON=5)"
else
    fail "alert 4: 2401=$(outcome e2e-s4 c2401)"
fi
# 5: resolved before the second step: never called
if [ "$(field e2e-s5 state)" = resolved ] && [ "$(outcome e2e-s5 c2106)" = cancelled ] \
    && [ "$(called 2106)" = 0 ] && ! compgen -G "$SPOOL/outgoing/alert-e2e-s5-*" >/dev/null; then
    pass "alert 5: resolved before the second step: its call file removed, never called"
else
    fail "alert 5: state=$(field e2e-s5 state) 2106=$(outcome e2e-s5 c2106)/$(called 2106)"
fi
# 6: two contacts in one step both press: one ack wins, the other is stale
o6="$(outcome e2e-s6 c2107) $(outcome e2e-s6 c2108)"
if { [ "$o6" = "answered_acked stale" ] || [ "$o6" = "stale answered_acked" ]; } \
    && [ "$(grep -c "app_verbose.c: Alert e2e-s6 call [0-9]*: ACKED" "$LOG")" = 1 ] \
    && [ "$(grep -c "app_verbose.c: Alert e2e-s6 call [0-9]*: STALE" "$LOG")" = 1 ]; then
    pass "alert 6: both pressed at once: one ACKED, the other heard 'already acknowledged' (stale)"
else
    fail "alert 6: outcomes $o6"
fi
# 7: the rendered message was played, and it is 8 kHz mono 16-bit
# (Asterisk names the format it picked, "slin" for an 8 kHz wav, where the
# extension would be.)
played=$(grep -oE "<Local/2101@alert-phones-[0-9a-f]+;1> Playing '/var/lib/asterisk/autodial/sounds/[0-9a-f]{16}\.[a-z0-9]+' \(escape_digits=1\)" "$LOG" \
    | head -1 | grep -oE "/var/lib/asterisk/autodial/sounds/[0-9a-f]{16}" || true)
fmt=""
[ -n "$played" ] && fmt=$(python3 -c "import wave,sys; w=wave.open(sys.argv[1]); print(w.getframerate(), w.getnchannels(), w.getsampwidth(), round(w.getnframes()/w.getframerate(),1))" "$ROOT$played.wav" 2>&1)
if [ -n "$played" ] && [ "${fmt% *}" = "8000 1 2" ]; then
    pass "alert 7: Asterisk played the rendered message $played.wav: 8000 Hz, mono, 16-bit, ${fmt##* } s"
else
    fail "alert 7: played='${played:-none}' format='$fmt'"
fi
# 8: nobody acks, the chain runs out
if [ "$(field e2e-s8 state)" = unacknowledged ] && [ "$(outcome e2e-s8 c2303)" = no_answer ] \
    && [ "$(outcome e2e-s8 c2402)" = busy ] && grep -q "\[WARN\] alert e2e-s8 unacknowledged" "$ALOG"; then
    pass "alert 8: nobody acked: no_answer, busy, then unacknowledged (one WARN line)"
else
    fail "alert 8: state=$(field e2e-s8 state) 2303=$(outcome e2e-s8 c2303) 2402=$(outcome e2e-s8 c2402)"
fi

# the on-call line: the override's person rang first (no answer), then the
# layer's, who answered
if [ "$(called 2305)" = 1 ] && [ "$(called 2116)" = 1 ] \
    && grep -q "app_verbose.c: On-call line: OK c2305 then Local/2116@alert-phones/n" "$LOG" \
    && [ "$(grep -n "Executing \[2305@alert-phones:1\]" "$LOG" | head -1 | cut -d: -f1)" -lt \
         "$(grep -n "Executing \[2116@alert-phones:1\]" "$LOG" | head -1 | cut -d: -f1)" ]; then
    pass "on-call line: 7778 rang c2305 (on call by an override), then ONCALL_NEXT_DIAL c2116 (the layer), who answered"
else
    fail "on-call line: 2305=$(called 2305) 2116=$(called 2116)"; grep -E "On-call line|oncall" "$LOG" | tail -5
fi
# the alert line: acked by the caller's contact, via the line, the pending
# call file gone, one log line for the call
if [ "$(field e2e-s12 state)" = acked ] && [ "$(field e2e-s12 acked_by)" = c2117 ] \
    && [ "$(field e2e-s12 acked_via)" = line ] && [ "$(outcome e2e-s12 c2203)" = cancelled ] \
    && ! compgen -G "$SPOOL/outgoing/alert-e2e-s12-*" >/dev/null \
    && grep -q "line call from +79160002117 (c2117): OK.*acked \[e2e-s12\]" "$ALOG" \
    && grep -q "res_agi.c: alert,line: alert: line: c2117: 1 acked" "$LOG"; then
    pass "alert line: c2117 called 7777 from +79160002117, typed the PIN and pressed 1: e2e-s12 acked via line, its pending call file removed"
else
    fail "alert line: state=$(field e2e-s12 state) by=$(field e2e-s12 acked_by) via=$(field e2e-s12 acked_via) 2203=$(outcome e2e-s12 c2203)"
    grep -E "line call|Alert line" "$ALOG" "$LOG" | tail -5; cat "$WORK/prepare.out"
fi
# 9: a chain whose step is a schedule rings whoever is on call
sched9=$(ashow e2e-s9 | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['calls'][0].get('schedule'), d['calls'][0].get('why'))" 2>/dev/null || true)
if [ "$(outcome e2e-s9 c2111)" = answered_acked ] && [ "$(field e2e-s9 acked_by)" = c2111 ] \
    && [ "$sched9" = "e2eoc layer daily" ] && [ "$(called 2111)" = 1 ]; then
    pass "on call 9: a schedule step rang the contact on call (c2111, layer daily), who acked"
else
    fail "on call 9: 2111=$(outcome e2e-s9 c2111)/$(called 2111) schedule=$sched9"
fi
# 10: the override added while firing: the next step rang the covering
# person, never the original
if [ "$(outcome e2e-s10 c2304)" = "no_answer replanned" ] && [ "$(outcome e2e-s10 c2112)" = answered_acked ] \
    && [ "$(called 2304)" = 1 ] && [ "$(called 2112)" = 1 ] && [ "$(field e2e-s10 acked_by)" = c2112 ]; then
    pass "on call 10: an override added while firing re-planned the next step: c2112 rang and acked, c2304 only for the step already ringing"
else
    fail "on call 10: 2304=$(outcome e2e-s10 c2304)/$(called 2304) 2112=$(outcome e2e-s10 c2112)/$(called 2112)"
    cat "$WORK/override.out"; ashow e2e-s10
fi

# the receiver: one call for the DiskFull group though posted twice, acked
# on the phone; the HostDown group's call removed before it rang
dbid=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['id'])" "$r1" 2>/dev/null || true)
opsid=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['id'])" "$r3" 2>/dev/null || true)
st() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['status'])" "$1" 2>/dev/null || true; }
if [ -n "$dbid" ] && [ "$(st "$r1")" = raised ] && [ "$(st "$r2")" = duplicate ] \
    && [ "$(called 2109)" = 1 ] && [ "$(field "$dbid" state)" = acked ] \
    && [ "$(field "$dbid" acked_by)" = c2109 ]; then
    pass "serve: an Alertmanager group called a phone that acked it ($dbid); its replica's copy placed no second call"
else
    fail "serve: r1=$r1 r2=$r2 calls to 2109=$(called 2109) state=$(field "$dbid" state)"; tail -5 "$WORK/serve.log"
fi
if [ -n "$opsid" ] && [ "$(st "$r5")" = resolved ] && [ "$(field "$opsid" state)" = resolved ] \
    && [ "$(outcome "$opsid" c2110)" = cancelled ] && [ "$(called 2110)" = 0 ] \
    && ! compgen -G "$SPOOL/outgoing/alert-$opsid-*" >/dev/null; then
    pass "serve: the other group's resolved notification removed its pending call before it rang"
else
    fail "serve: r3=$r3 r5=$r5 state=$(field "$opsid" state) 2110=$(outcome "$opsid" c2110)/$(called 2110)"
fi
kill -TERM "$SERVE_PID" 2>/dev/null || true
serve_rc=0; wait "$SERVE_PID" || serve_rc=$?
if [ "$serve_rc" = 0 ] && grep -q "POST /alertmanager 200 id=$dbid outcome=duplicate" "$WORK/serve.log"; then
    pass "serve: one log line per request; SIGTERM: exit 0"
else
    fail "serve: exit $serve_rc after SIGTERM"; cat "$WORK/serve.log"
fi

# --- heartbeats (issue 19): the spool is the timer -------------------------
# A receiver of its own (port 9096) takes the pings; stopping it stops them.
start_serve 9096 "$WORK/serve-hb.log"
HB_PID=$STARTED_PID
hbping() { curl -sS -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer e2e-token-$$" \
    --data-binary "@$AM/01-firing-group-two-alerts.json" http://127.0.0.1:9096/heartbeats/e2ehb; }
hbrun() { grep -c "app_verbose.c: Heartbeat e2ehb: $1" "$LOG" || true; }
codes=""
for _ in $(seq 1 20); do codes="$codes $(hbping)"; sleep 1; done
alive=$(hbrun ALIVE)
rang_while_pinged=$(called 2202)
kill -TERM "$HB_PID" 2>/dev/null || true
wait "$HB_PID" || true
t_stop=$SECONDS
if [ "$codes" = "$(printf ' 200%.0s' $(seq 1 20))" ] && [ "$alive" -ge 1 ] && [ "$rang_while_pinged" = 0 ] \
    && [ "$(hbrun RAISED)" = 0 ]; then
    pass "heartbeat 1: pinged every second for 20 s over HTTP: the timer ran $alive time(s), ALIVE, nobody rang"
else
    fail "heartbeat 1: codes=$codes alive=$alive rang=$rang_while_pinged raised=$(hbrun RAISED)"
fi
# pings stopped (the receiver is down): within timeout + 5 s the phone rings
# and hears the heartbeat's text
if wait_for "$LOG" "Executing \[2202@alert-phones:1\]" 15; then
    t_ring=$((SECONDS - t_stop))
else
    t_ring=none
fi
wait_for "$LOG" "<Local/2202@alert-phones-[0-9a-f]+;1> Playing '/var/lib/asterisk/autodial/sounds/[0-9a-f]{16}\." 10 || true
heard=$(grep -cE "<Local/2202@alert-phones-[0-9a-f]+;1> Playing '/var/lib/asterisk/autodial/sounds/[0-9a-f]{16}\." "$LOG" || true)
if [ "$t_ring" != none ] && [ "$t_ring" -le 15 ] && [ "$(hbrun RAISED)" = 1 ] && [ "$heard" -ge 1 ] \
    && [ "$(field hb-e2ehb text)" = "The end to end heartbeat has stopped." ]; then
    pass "heartbeat 2: pings stopped with the receiver down: RAISED, 2202 rang ${t_ring} s later and heard the rendered text"
else
    fail "heartbeat 2: ring after ${t_ring} s, RAISED=$(hbrun RAISED), heard=$heard"; grep -i heartbeat "$ALOG" | tail -5
fi
# a ping resolves the alert and removes its pending call (the second step)
adial heartbeat ping e2ehb >"$WORK/hb-ping.out" 2>&1 || true
t_ping=$SECONDS
if [ "$(field hb-e2ehb state)" = resolved ] && [ "$(outcome hb-e2ehb c2114)" = cancelled ] \
    && ! compgen -G "$SPOOL/outgoing/alert-hb-e2ehb-e1-r0-s1-*" >/dev/null \
    && grep -q recovered "$WORK/hb-ping.out"; then
    pass "heartbeat 3: a ping resolved hb-e2ehb and removed its pending call"
else
    fail "heartbeat 3: state=$(field hb-e2ehb state) 2114=$(outcome hb-e2ehb c2114)"; cat "$WORK/hb-ping.out"
fi
# Asterisk restarted while the heartbeat is armed: it still fires at the
# deadline (the spool is read again at start)
ast "core stop now" >/dev/null 2>&1 || true
wait "$AST_PID" 2>/dev/null || true
chroot "$ROOT" asterisk -U asterisk -G asterisk -f -n >>"$WORK/asterisk.out" 2>&1 &
AST_PID=$!
for _ in $(seq 1 100); do
    ast "core show version" >/dev/null 2>&1 && break
    sleep 0.2
done
t_fire=none
for _ in $(seq 1 100); do
    if [ "$(hbrun RAISED)" -ge 2 ]; then t_fire=$((SECONDS - t_ping)); break; fi
    sleep 0.3
done
if [ "$t_fire" != none ] && [ "$t_fire" -ge 9 ] && [ "$t_fire" -le 20 ] && [ "$(field hb-e2ehb episode)" = 2 ]; then
    pass "heartbeat 4: Asterisk restarted while armed: the timer still fired ${t_fire} s after the last ping (episode 2 raised)"
else
    fail "heartbeat 4: fired after ${t_fire} s, RAISED=$(hbrun RAISED), episode=$(field hb-e2ehb episode)"
fi
adial heartbeat ping e2ehb >/dev/null 2>&1 || true

# --- the package: remove keeps the conffiles, purge leaves nothing of ours --
if [ -n "${E2E_DEB:-}" ]; then
    chroot "$ROOT" asterisk -rx "core stop now" >/dev/null 2>&1 || true
    sleep 1
    ours="/usr/bin/autodial /usr/share/asterisk/agi-bin/callback /usr/share/asterisk/agi-bin/alert
        /lib/systemd/system/autodial-serve.service /usr/share/man/man1/autodial.1.gz
        /usr/share/man/man8/callback.8.gz /usr/share/bash-completion/completions/autodial
        /usr/share/doc/agi-callback"
    conffiles="/etc/asterisk/callback.json /etc/asterisk/alerts.json /etc/asterisk/extensions_callback.conf
        /etc/asterisk/extensions_alert.conf /etc/logrotate.d/agi-callback"
    runtime="/var/lib/asterisk/autodial /var/spool/asterisk/callback-state /var/log/asterisk/callback.log
        /var/log/asterisk/autodial-alert.log"
    left=""; kept=""
    chroot "$ROOT" dpkg -r agi-callback >"$WORK/dpkg-r.log" 2>&1 || cat "$WORK/dpkg-r.log"
    for f in $ours; do [ -e "$ROOT$f" ] && left="$left $f"; done
    for f in $conffiles; do [ -e "$ROOT$f" ] && kept="$kept $f"; done
    chroot "$ROOT" dpkg -P agi-callback >"$WORK/dpkg-p.log" 2>&1 || cat "$WORK/dpkg-p.log"
    for f in $ours $conffiles $runtime; do [ -e "$ROOT$f" ] && left="$left $f(purged)"; done
    if [ -z "$left" ] && [ "$(wc -w <<<"$kept")" = 5 ]; then
        pass "package: remove kept the 5 conffiles only; purge left nothing of ours (state, logs, spool state gone)"
    else
        fail "package: left behind:${left:- nothing}; conffiles kept after remove:${kept:- none}"
    fi
fi

# Warnings during the whole run, for the record.
grep -E "WARNING|ERROR" "$LOG" | tail -20 >"$WORK/all-warnings" || true
if [ -s "$WORK/all-warnings" ]; then
    echo "e2e: warnings logged during the run (for information):"; cat "$WORK/all-warnings"
fi

echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
