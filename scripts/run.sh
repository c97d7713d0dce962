#!/usr/bin/env bash
# run.sh runs the whole orgs system on this machine, for trying it out and for development:
# Postgres (ORGS_DATABASE_URL, else the throwaway cluster of scripts/pg.sh), NATS JetStream,
# the migrations, then api, mailer and reminder with a development configuration. Ctrl-C
# stops everything it started; if one process dies, the others are stopped too and run.sh
# exits non-zero. Any ORGS_ variable set in the environment wins over the defaults here.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .tmp bin

# Job control: each background process gets its own process group, so Ctrl-C reaches only
# this script, which then stops the groups in order.
set -m

nats_port=${NATS_PORT:-4222}
names=()
pids=()
started_pg=0

log() { printf 'run.sh: %s\n' "$*" >&2; }

cleanup() {
	local status=$?
	# A second Ctrl-C must not cut the shutdown short.
	trap '' INT TERM
	trap - EXIT
	local i
	# The services first, so that they can finish their work; NATS after them.
	for i in "${!pids[@]}"; do
		[ "${names[i]}" = nats ] || kill -TERM -- "-${pids[i]}" 2>/dev/null || true
	done
	for i in "${!pids[@]}"; do
		[ "${names[i]}" = nats ] || wait "${pids[i]}" 2>/dev/null || true
	done
	for i in "${!pids[@]}"; do
		if [ "${names[i]}" = nats ]; then
			kill -TERM -- "-${pids[i]}" 2>/dev/null || true
			wait "${pids[i]}" 2>/dev/null || true
		fi
	done
	if [ "$started_pg" = 1 ]; then
		log "stopping postgres"
		scripts/pg.sh stop || true
	fi
	log "stopped"
	exit "$status"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# start NAME CMD...: runs CMD in the background, its output prefixed with NAME.
start() {
	local name=$1
	shift
	local prefix
	prefix=$(printf '%-8s| ' "$name")
	# The prefixer ignores Ctrl-C so that it outlives its process's last words.
	"$@" > >(trap '' INT TERM; exec sed -u "s/^/$prefix/") 2>&1 &
	names+=("$name")
	pids+=("$!")
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port name
	local i
	for ((i = 0; i < 300; i++)); do
		if port_open "$1" "$2"; then return 0; fi
		check_alive
		sleep 0.2
	done
	log "$3 did not listen on $1:$2 within 60s"
	exit 1
}

check_alive() {
	local i
	for i in "${!pids[@]}"; do
		if ! kill -0 "${pids[i]}" 2>/dev/null; then
			log "${names[i]} exited unexpectedly"
			exit 1
		fi
	done
}

# Postgres.
if [ -n "${ORGS_DATABASE_URL:-}" ]; then
	log "using ORGS_DATABASE_URL"
else
	scripts/pg.sh status || started_pg=1
	ORGS_DATABASE_URL=$(scripts/pg.sh start)
fi
export ORGS_DATABASE_URL

# Development configuration, unless set.
export ORGS_ENV=${ORGS_ENV:-dev}
export ORGS_NATS_URL=${ORGS_NATS_URL:-nats://127.0.0.1:$nats_port}
export ORGS_HTTP_ADDR=${ORGS_HTTP_ADDR:-127.0.0.1:8080}
export ORGS_PUBLIC_URL=${ORGS_PUBLIC_URL:-http://$ORGS_HTTP_ADDR}
export ORGS_API_KEYS=${ORGS_API_KEYS:-dev:dev-secret-key-change-me}
export ORGS_MAIL_URL=${ORGS_MAIL_URL:-log:}
export ORGS_LOG_FORMAT=${ORGS_LOG_FORMAT:-console}
export ORGS_RIVERUI_USER=${ORGS_RIVERUI_USER:-admin}
export ORGS_RIVERUI_PASSWORD=${ORGS_RIVERUI_PASSWORD:-admin-dev-password}

log "building"
go build -o bin/ ./cmd/...
# nats-server is a module dependency: built like our commands, so that stopping it stops
# the server itself rather than a go run wrapper.
[ -x bin/nats-server ] || go build -o bin/nats-server github.com/nats-io/nats-server/v2

# NATS JetStream, unless ORGS_NATS_URL points elsewhere.
if [ "$ORGS_NATS_URL" = "nats://127.0.0.1:$nats_port" ]; then
	if port_open 127.0.0.1 "$nats_port"; then
		log "port $nats_port is taken: stop what runs there, or set NATS_PORT"
		exit 1
	fi
	mkdir -p .tmp/nats
	start nats bin/nats-server -js -sd .tmp/nats -a 127.0.0.1 -p "$nats_port"
	wait_port 127.0.0.1 "$nats_port" nats
fi

log "migrating"
bin/api migrate

http_host=${ORGS_HTTP_ADDR%:*}
http_port=${ORGS_HTTP_ADDR##*:}
start api env ORGS_METRICS_ADDR=127.0.0.1:9101 bin/api
start mailer env ORGS_METRICS_ADDR=127.0.0.1:9102 bin/mailer
start reminder env ORGS_METRICS_ADDR=127.0.0.1:9103 bin/reminder
wait_port "${http_host:-127.0.0.1}" "$http_port" api

api_key=${ORGS_API_KEYS%%,*}
if [ "$ORGS_MAIL_URL" = log: ]; then
	mail_note="Mail goes to the log: look for the activation link there."
else
	mail_note="Mail goes to $ORGS_MAIL_URL."
fi
cat >&2 <<BANNER

  orgs is running. Ctrl-C stops everything.

  API            $ORGS_PUBLIC_URL   (OpenAPI: $ORGS_PUBLIC_URL/openapi.json)
  API key        ${api_key#*:}   (Authorization: Bearer ...)
  sign-up page   $ORGS_PUBLIC_URL/signup
  River UI       $ORGS_PUBLIC_URL/riverui   ($ORGS_RIVERUI_USER / $ORGS_RIVERUI_PASSWORD)
  metrics        api http://127.0.0.1:9101/metrics
                 mailer http://127.0.0.1:9102/metrics
                 reminder http://127.0.0.1:9103/metrics
  NATS           $ORGS_NATS_URL
  Postgres       $ORGS_DATABASE_URL

  $mail_note

BANNER

# Until Ctrl-C, or until one of them exits.
while :; do
	wait -n "${pids[@]}" || true
	check_alive
done
