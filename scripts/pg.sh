#!/usr/bin/env bash
# pg.sh starts (or stops) a throwaway PostgreSQL cluster under .tmp/pg for make run and
# make test, using the machine's PostgreSQL binaries (installing Debian's postgresql when
# they are missing). It prints the connection URL on stdout.
#
#   scripts/pg.sh start   # idempotent; prints postgres://...
#   scripts/pg.sh status  # exit status 0 when the cluster is running
#   scripts/pg.sh stop
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.tmp/pg"
port="${ORGS_PG_PORT:-54329}"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# An existing cluster keeps the port it was created with.
if [ -z "${ORGS_PG_PORT:-}" ] && [ -f "$dir/data/postgresql.conf" ]; then
	p=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$dir/data/postgresql.conf" | tail -n 1)
	[ -n "$p" ] && port=$p
fi

find_bin() {
	local d
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
	done
	if command -v pg_ctl >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v pg_ctl)")"; return 0; fi
	return 1
}

bin=$(find_bin || true)
if [ -z "$bin" ]; then
	echo "pg.sh: installing Debian's postgresql" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq postgresql >&2
	bin=$(find_bin)
fi

# Postgres refuses to run as root: run it as the postgres user then.
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || useradd --system --home "$dir" postgres
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

case "${1:-start}" in
start)
	mkdir -p "$dir"
	if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; chmod 700 "$dir"; fi
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		# Another server on the default port (another checkout's cluster): take the next
		# free one, unless ORGS_PG_PORT asks for a port.
		if [ -z "${ORGS_PG_PORT:-}" ]; then
			while port_in_use "$port" && [ "$port" -lt 54399 ]; do port=$((port + 1)); done
		fi
		as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
			|| { cat "$dir/initdb.log" >&2; exit 1; }
		cat >>"$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
	fi
	if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
			|| { tail -n 30 "$dir/server.log" >&2; exit 1; }
	fi
	as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -Atqc \
		"SELECT 1 FROM pg_roles WHERE rolname='orgs'" | grep -q 1 \
		|| as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -qc "CREATE ROLE orgs LOGIN SUPERUSER" >/dev/null
	as_pg "$bin/psql" -h "$dir" -p "$port" -U postgres -d postgres -Atqc \
		"SELECT 1 FROM pg_database WHERE datname='orgs'" | grep -q 1 \
		|| as_pg "$bin/createdb" -h "$dir" -p "$port" -U postgres -O orgs orgs
	echo "postgres://orgs@127.0.0.1:${port}/orgs?sslmode=disable"
	;;
status)
	[ -f "$dir/data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
	;;
stop)
	if [ -f "$dir/data/PG_VERSION" ]; then
		as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	;;
*)
	echo "usage: pg.sh start|status|stop" >&2
	exit 2
	;;
esac
