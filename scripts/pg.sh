#!/usr/bin/env bash
# pg.sh starts (or stops) a throwaway PostgreSQL cluster for make run and make test, using
# the machine's PostgreSQL binaries (installing Debian's postgresql when they are missing).
# It prints the connection URL on stdout.
#
#   scripts/pg.sh start   # idempotent; prints postgres://...
#   scripts/pg.sh status  # exit status 0 when the cluster is running
#   scripts/pg.sh stop
#   scripts/pg.sh remove  # stop, then delete the cluster's files
#   scripts/pg.sh dir     # print the cluster's directory
#
# The cluster lives in .tmp/pg of the checkout. Postgres refuses to run as root, so as
# root it runs as the postgres user, who may not be able to reach the checkout (a checkout
# in root's home, mode 700) or write there: the cluster then lives in
# /var/tmp/orgs-pg-<user>-<hash of the checkout's path> (or under $TMPDIR, /tmp), owned by
# the user that runs Postgres, so that two checkouts never share one. start, status, stop
# and remove all find it there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd -P)
port="${ORGS_PG_PORT:-54329}"

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

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
if [ "$(id -u)" = 0 ]; then
	pg_user=postgres
	id postgres >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent postgres
else
	pg_user=$(id -un)
fi
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# The two places a cluster may live: in the checkout, and a folder of the checkout's own
# outside it.
in_checkout="$root/.tmp/pg"
hash=$(printf '%s' "$root" | sha256sum | cut -c1-16)
outside="$(
	for d in /var/tmp "${TMPDIR:-/tmp}" /tmp; do
		if [ -d "$d" ] && [ -w "$d" ]; then echo "$d"; break; fi
	done
)/orgs-pg-$pg_user-$hash"

# usable reports whether the user that runs Postgres can write into directory $1.
usable() { [ -d "$1" ] && as_pg test -w "$1" -a -x "$1" 2>/dev/null; }

# prepare_in_checkout makes .tmp/pg for the Postgres user; it reports whether that user
# can then work there.
prepare_in_checkout() {
	mkdir -p "$in_checkout" 2>/dev/null || return 1
	if [ "$(id -u)" = 0 ]; then chown postgres "$in_checkout" && chmod 700 "$in_checkout"; fi
	usable "$in_checkout"
}

# prepare_outside makes the folder outside the checkout, refusing one that someone else
# made (it is in a world-writable directory): it must be a real directory of the
# Postgres user's, mode 700.
prepare_outside() {
	if [ ! -e "$outside" ] && [ ! -L "$outside" ]; then
		mkdir -m 700 "$outside"
		if [ "$(id -u)" = 0 ]; then chown postgres "$outside"; fi
	fi
	if [ -L "$outside" ] || [ ! -d "$outside" ] || [ "$(stat -c %U "$outside")" != "$pg_user" ]; then
		echo "pg.sh: $outside is not a directory of $pg_user's; remove it and retry" >&2
		return 1
	fi
	chmod 700 "$outside"
}

# cluster_dir prints where the cluster is: the place that holds one (the checkout first),
# else nothing.
cluster_dir() {
	local d
	for d in "$in_checkout" "$outside"; do
		if [ -f "$d/data/PG_VERSION" ] && [ ! -L "$d" ]; then echo "$d"; return 0; fi
	done
	return 1
}

# choose_dir sets dir for start: an existing cluster the Postgres user can still reach,
# else the checkout if it can work there, else the folder outside.
choose_dir() {
	if dir=$(cluster_dir) && usable "$dir"; then return 0; fi
	if prepare_in_checkout; then dir=$in_checkout; return 0; fi
	prepare_outside
	dir=$outside
}

# Unix sockets have a path limit of about 107 bytes: a deep checkout puts the socket in a
# short folder of its own.
socket_dir_for() {
	if [ "${#1}" -le 80 ]; then echo "$1"; else echo "/tmp/orgs-pg-sock-$pg_user-$hash"; fi
}

case "${1:-start}" in
start)
	choose_dir
	sock=$(socket_dir_for "$dir")
	if [ "$sock" != "$dir" ]; then
		[ -d "$sock" ] && [ ! -L "$sock" ] || mkdir -m 700 "$sock"
		if [ "$(id -u)" = 0 ]; then chown postgres "$sock"; fi
	fi
	if [ -f "$dir/data/PG_VERSION" ]; then
		# An existing cluster keeps the port it was created with.
		if [ -z "${ORGS_PG_PORT:-}" ]; then
			p=$(sed -n 's/^port = \([0-9]*\)$/\1/p' "$dir/data/postgresql.conf" | tail -n 1)
			[ -n "$p" ] && port=$p
		fi
	else
		# Another server on the default port (another checkout's cluster): take the next
		# free one, unless ORGS_PG_PORT asks for a port.
		if [ -z "${ORGS_PG_PORT:-}" ]; then
			while port_in_use "$port" && [ "$port" -lt 54399 ]; do port=$((port + 1)); done
		fi
		# initdb runs in a folder the Postgres user can enter (it fails in one it cannot).
		(cd / && as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C) >"$dir/initdb.log" 2>&1 \
			|| { cat "$dir/initdb.log" >&2; exit 1; }
		as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
	fi
	# pg_stat_statements (for make bench-e2e's cost per request): added to a cluster made
	# before it was, which then restarts once.
	if [ -f "$bin/../lib/pg_stat_statements.so" ] && ! grep -q "^shared_preload_libraries = 'pg_stat_statements'" "$dir/data/postgresql.conf"; then
		as_pg tee -a "$dir/data/postgresql.conf" >/dev/null <<CONF
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 10000
CONF
		if (cd / && as_pg "$bin/pg_ctl" -D "$dir/data" status) >/dev/null 2>&1; then
			(cd / && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop) >/dev/null
		fi
	fi
	if ! (cd / && as_pg "$bin/pg_ctl" -D "$dir/data" status) >/dev/null 2>&1; then
		(cd / && as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start) >/dev/null \
			|| { tail -n 30 "$dir/server.log" >&2; exit 1; }
	fi
	psql() { (cd / && as_pg "$bin/psql" -h "$sock" -p "$port" -U postgres -d postgres "$@"); }
	psql -Atqc "SELECT 1 FROM pg_roles WHERE rolname='orgs'" | grep -q 1 \
		|| psql -qc "CREATE ROLE orgs LOGIN SUPERUSER" >/dev/null
	psql -Atqc "SELECT 1 FROM pg_database WHERE datname='orgs'" | grep -q 1 \
		|| (cd / && as_pg "$bin/createdb" -h "$sock" -p "$port" -U postgres -O orgs orgs)
	if grep -q "^shared_preload_libraries = 'pg_stat_statements'" "$dir/data/postgresql.conf"; then
		psql -d orgs -qc "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
	fi
	echo "postgres://orgs@127.0.0.1:${port}/orgs?sslmode=disable"
	;;
status)
	dir=$(cluster_dir) && (cd / && as_pg "$bin/pg_ctl" -D "$dir/data" status) >/dev/null 2>&1
	;;
stop)
	if dir=$(cluster_dir); then
		(cd / && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop) >/dev/null 2>&1 || true
	fi
	;;
remove)
	while dir=$(cluster_dir); do
		(cd / && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop) >/dev/null 2>&1 || true
		rm -rf "$dir"
	done
	sock=/tmp/orgs-pg-sock-$pg_user-$hash
	if [ -d "$sock" ] && [ ! -L "$sock" ]; then rm -rf "$sock"; fi
	;;
dir)
	cluster_dir || { echo "pg.sh: no cluster for $root" >&2; exit 1; }
	;;
*)
	echo "usage: pg.sh start|status|stop|remove|dir" >&2
	exit 2
	;;
esac
