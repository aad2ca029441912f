#!/usr/bin/env bash
# Load benchmark of `autodial serve` (numbers in docs/operations.md). Needs wrk
# (Debian package `wrk`) and a release build; the spool and the database
# on tmpfs, speech off (the receiver's own cost).
#
#   bash benches/serve.sh            # 2 client threads, 20 connections, 15 s a run
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
(cd "$TOP" && cargo build --release --bin autodial -q)
BIN=$TOP/target/release/autodial
D=$(mktemp -d /dev/shm/autodial-serve-bench.XXXXXX)
trap 'kill "$PID" ${PID2:-} 2>/dev/null; rm -rf "$D"' EXIT
mkdir -p "$D/spool/outgoing" "$D/spool/tmp"
cat >"$D/alerts.json" <<JSON
{"call": {"channel": "PJSIP/{number}@sip-provider"},
 "contacts": {"a": {"number": "1001"}, "b": {"number": "1002"}},
 "chains": {"db": {"steps": [{"contacts": ["a"]}, {"contacts": ["b"], "after_seconds": 120}]}},
 "routes": [{"chain": "db"}],
 "speech": {"engine": "none"},
 "state_dir": "$D/state", "spool_dir": "$D/spool"}
JSON
echo bench-token >"$D/token"
! curl -fsS http://127.0.0.1:19095/healthz >/dev/null 2>&1 || { echo "port 19095 is in use"; exit 1; }
"$BIN" serve --listen 127.0.0.1:19095 --config "$D/alerts.json" --token-file "$D/token" 2>"$D/serve.log" &
PID=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:19095/healthz >/dev/null 2>&1 && break; sleep 0.1; done
BODY=$(cat "$TOP/fixtures/alertmanager-0.25/01-firing-group-two-alerts.json")
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

cat >"$D/dup.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = [==[$BODY]==]
LUA
cat >"$D/new.lua" <<LUA
local counter = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("id", tid) end
function init(args) counter = 0 end
local body = [==[$BODY]==]
function request()
  counter = counter + 1
  local b = body:gsub('{}:{alertname=', 'bench-' .. id .. '-' .. counter .. ':{alertname=')
  return wrk.format("POST", "/alertmanager",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer bench-token"}, b)
end
LUA
# one firing first, so the duplicates are duplicates
curl -fsS -H "Authorization: Bearer bench-token" -d "$BODY" http://127.0.0.1:19095/alertmanager >/dev/null
echo "RSS after start: $(rss) KiB"
echo "== duplicate firing payload (the same group over and over)"
wrk -t2 -c20 -d15s --latency -s "$D/dup.lua" http://127.0.0.1:19095/alertmanager | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
echo "RSS: $(rss) KiB"
for c in 20 4; do
    echo "== new groups (a new alert and its 2 call files each), $c connections"
    wrk -t2 -c$c -d15s --latency -s "$D/new.lua" http://127.0.0.1:19095/alertmanager | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
done
echo "RSS: $(rss) KiB; call files: $(ls "$D/spool/outgoing" | wc -l)"
echo "== with 2,000 idle and trickling connections held open (reopened as the server closes them)"
cat >"$D/idle.py" <<'PY'
import socket, sys, time
n, port, stop = int(sys.argv[1]), int(sys.argv[2]), time.time() + float(sys.argv[3])
def conn(i):
    s = socket.create_connection(("127.0.0.1", port))
    if i % 2:
        s.send(b"POST /alerts HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    s.setblocking(False)
    return s
socks = [conn(i) for i in range(n)]
print("holding", len(socks), flush=True)
while time.time() < stop:
    time.sleep(0.5)
    for i, s in enumerate(socks):
        try:
            if s.recv(1) == b"":
                raise OSError
        except BlockingIOError:
            if i % 2:
                try: s.send(b"y")
                except OSError: pass
            continue
        except OSError:
            pass
        s.close()
        socks[i] = conn(i)
PY
ulimit -n 8192
python3 "$D/idle.py" 2000 19095 60 >"$D/idle.out" &
IDLE=$!
for _ in $(seq 1 300); do grep -q holding "$D/idle.out" && break; sleep 0.1; done
echo "  $(cat "$D/idle.out")"
fds() { ls "/proc/$PID/fd" | wc -l; }
( for _ in $(seq 1 30); do fds; sleep 1; done ) >"$D/fds.out" &
wrk -t2 -c4 -d15s --latency http://127.0.0.1:19095/healthz | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
wrk -t2 -c20 -d15s --latency -s "$D/new.lua" http://127.0.0.1:19095/alertmanager | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
echo "  server descriptors during the runs: min $(sort -n "$D/fds.out" | head -1), max $(sort -n "$D/fds.out" | tail -1)"
kill "$IDLE" 2>/dev/null || true
echo "RSS: $(rss) KiB"
echo "== memory over 100,000 more duplicate requests"
before=$(rss)
wrk -t2 -c20 -d60s -s "$D/dup.lua" http://127.0.0.1:19095/alertmanager >"$D/long.out" &
W=$!
n=0
while kill -0 "$W" 2>/dev/null; do sleep 5; n=$((n + 5)); echo "  after ${n} s: $(rss) KiB"; done
grep -E "requests in" "$D/long.out"
echo "RSS before: $before KiB, after: $(rss) KiB"
echo "== /healthz while a 60 s render runs (a second server whose engine sleeps)"
sed 's/"speech": {"engine": "none"}/"speech": {"engine": "command", "command": ["sh", "-c", "exec sleep 60", "{wav}"], "timeout_seconds": 60}/; s#"state_dir": "[^"]*"#"state_dir": "'"$D"'/state2"#' "$D/alerts.json" >"$D/slow.json"
"$BIN" serve --listen 127.0.0.1:19096 --config "$D/slow.json" --token-file "$D/token" 2>"$D/serve2.log" &
PID2=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:19096/healthz >/dev/null 2>&1 && break; sleep 0.1; done
curl -sS -o /dev/null -H "Authorization: Bearer bench-token" -d '{"id": "slow", "text": "x", "chain": "db"}' http://127.0.0.1:19096/alerts &
CURL=$!
sleep 1
wrk -t2 -c4 -d10s --latency http://127.0.0.1:19096/healthz | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
kill "$PID2" 2>/dev/null || true
wait "$CURL" 2>/dev/null || true
