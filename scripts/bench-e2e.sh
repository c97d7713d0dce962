#!/usr/bin/env bash
# bench-e2e.sh measures orgs end to end: it starts the whole system as make run does (every
# process, mail to a local SMTP sink, logs to .tmp/bench-e2e/), runs the load tool
# (cmd/orgsload) flow by flow, prints its figures, and stops everything.
#
#   scripts/bench-e2e.sh [orgsload flags] [flow ...]     e.g. -d 10s -c 8 invite-64 list
#
# BENCH_ENV may add configuration for the processes (e.g. BENCH_ENV="ORGS_DATABASE_MAX_CONNS=40").
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=.tmp/bench-e2e
mkdir -p "$out" bin
go build -o bin/ ./cmd/...

sink_addr=127.0.0.1:${BENCH_SMTP_PORT:-2525}
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

bin/orgsload sink -addr "$sink_addr" >"$out/sink.log" 2>&1 &
pids+=("$!")

# The system, configured as PERFORMANCE.md measures it: logs at warn, no anonymous limiter
# (every client is 127.0.0.1), mail to the sink.
env ORGS_LOG_LEVEL=warn ORGS_ANONYMOUS_RATE=0 ORGS_MAIL_URL="smtp://$sink_addr" ${BENCH_ENV:-} \
	scripts/run.sh >"$out/run.log" 2>&1 &
pids+=("$!")

url=${ORGS_PUBLIC_URL:-http://127.0.0.1:8080}
db=${ORGS_DATABASE_URL:-$(scripts/pg.sh start)}
if ! bin/orgsload -wait 2m -url "$url" -db "$db" "$@"; then
	if ! kill -0 "${pids[1]}" 2>/dev/null; then
		echo "bench-e2e: the system stopped; the end of its log ($out/run.log):" >&2
		tail -n 40 "$out/run.log" >&2
	fi
	exit 1
fi
