#!/usr/bin/env bash
# Pings per second over HTTP (numbers in docs/operations.md): `autodial
# serve` with one heartbeat, wrk posting Alertmanager's Watchdog-sized body
# to /heartbeats/prom. Needs wrk and a release build; tmpfs for the state.
#
#   bash benches/heartbeat.sh
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
(cd "$TOP" && cargo build --release --bin autodial -q)
BIN=$TOP/target/release/autodial
D=$(mktemp -d /dev/shm/autodial-hb-bench.XXXXXX)
trap 'kill "$PID" 2>/dev/null; rm -rf "$D"' EXIT
mkdir -p "$D/spool/outgoing" "$D/spool/tmp"
cat >"$D/alerts.json" <<JSON
{"call": {"channel": "PJSIP/{number}@sip-provider"},
 "contacts": {"a": {"number": "1001"}},
 "chains": {"ops": {"steps": [{"contacts": ["a"]}]}},
 "heartbeats": {"prom": {"timeout_seconds": 300, "chain": "ops", "text": "x"}},
 "speech": {"engine": "none"},
 "state_dir": "$D/state", "spool_dir": "$D/spool"}
JSON
echo bench-token >"$D/token"
! curl -fsS http://127.0.0.1:19096/healthz >/dev/null 2>&1 || { echo "port 19096 is in use"; exit 1; }
"$BIN" serve --listen 127.0.0.1:19096 --config "$D/alerts.json" --token-file "$D/token" 2>"$D/serve.log" &
PID=$!
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:19096/healthz >/dev/null 2>&1 && break; sleep 0.1; done
BODY=$(cat "$TOP/fixtures/alertmanager-0.25/01-firing-group-two-alerts.json")
cat >"$D/ping.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
wrk.body = [==[$BODY]==]
LUA
for c in 20 4; do
    echo "== POST /heartbeats/prom, $c connections"
    wrk -t2 -c$c -d15s --latency -s "$D/ping.lua" http://127.0.0.1:19096/heartbeats/prom | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
done
echo "RSS: $(awk '/VmRSS/ {print $2}' "/proc/$PID/status") KiB; timer files: $(ls "$D/spool/outgoing" | wc -l)"
