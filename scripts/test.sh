#!/usr/bin/env bash
# test.sh is make test and CI: go vet, a gofmt check, every test against a real Postgres
# (TEST_DATABASE_URL, else the throwaway cluster of scripts/pg.sh) and, when Chromium can be
# had, the browser tests. It ends with a "tests: N passed, N failed, N skipped" line and
# exits non-zero on any failure. Browser screenshots land in ./test-artifacts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mkdir -p .tmp test-artifacts

step() { printf '\n==> %s\n' "$*"; }
warn() { printf '\n!!! WARNING: %s\n\n' "$*" >&2; }

started_pg=0
cleanup() {
	local status=$?
	if [ "$started_pg" = 1 ]; then scripts/pg.sh stop || true; fi
	exit "$status"
}
trap cleanup EXIT

if [ -z "${TEST_DATABASE_URL:-}" ]; then
	step "postgres (scripts/pg.sh)"
	scripts/pg.sh status || started_pg=1
	TEST_DATABASE_URL=$(scripts/pg.sh start)
	export TEST_DATABASE_URL
fi
echo "TEST_DATABASE_URL=$TEST_DATABASE_URL"

if ! command -v chromium >/dev/null 2>&1; then
	step "installing Debian's chromium for the browser tests"
	if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; then
		warn "could not install chromium: the browser tests will be SKIPPED"
	fi
fi
if command -v chromium >/dev/null 2>&1; then
	ORGS_TEST_CHROMIUM=$(command -v chromium)
	export ORGS_TEST_CHROMIUM
	echo "ORGS_TEST_CHROMIUM=$ORGS_TEST_CHROMIUM"
fi
export ORGS_TEST_ARTIFACTS="$root/test-artifacts"

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(find . -name '*.go' -not -path './.tmp/*' -not -path './bin/*' -print0 | xargs -0 -r gofmt -l)
if [ -n "$unformatted" ]; then
	echo "these files need gofmt -w:" >&2
	echo "$unformatted" >&2
	exit 1
fi

# go test -json, rendered like plain go test: package results, build errors and the
# output of failed tests only; the raw stream is kept in .tmp/go-test.json.
render() {
	awk '
	function field(line, key,    i, s, c, out) {
		i = index(line, "\"" key "\":\"")
		if (i == 0) return ""
		s = substr(line, i + length(key) + 4)
		out = ""
		while (length(s) > 0) {
			c = substr(s, 1, 1)
			if (c == "\"") break
			if (c == "\\") {
				c = substr(s, 2, 1)
				if (c == "n") out = out "\n"
				else if (c == "t") out = out "\t"
				else if (c == "r") out = out "\r"
				else if (c == "u") { out = out sprintf("%c", hex(substr(s, 3, 4))); s = substr(s, 5) }
				else out = out c
				s = substr(s, 3)
				continue
			}
			out = out c
			s = substr(s, 2)
		}
		return out
	}
	function hex(h,    i, n) {
		n = 0
		for (i = 1; i <= length(h); i++) n = n * 16 + index("0123456789abcdef", tolower(substr(h, i, 1))) - 1
		return n < 128 ? n : 63
	}
	{
		action = field($0, "Action"); pkg = field($0, "Package"); test = field($0, "Test")
		if (action == "build-output") { printf "%s", field($0, "Output"); next }
		if (test == "") {
			if (action != "output") next
			out = field($0, "Output")
			if (out == "PASS\n" || out == "FAIL\n" || out ~ /^(=== |--- )/ || out ~ /^testing: warning: no tests to run/) next
			printf "%s", out
			next
		}
		key = pkg " " test
		if (action == "output") {
			out = field($0, "Output")
			if (out !~ /^=== (RUN|PAUSE|CONT|NAME)/) buf[key] = buf[key] out
		} else if (action == "pass" || action == "skip") {
			if (action == "pass") passed++; else skipped++
			# A crash (a test binary timing out) can be reported under a test that passed.
			if (buf[key] ~ /(^|\n)panic: /) printf "%s", buf[key]
			delete buf[key]
		}
		else if (action == "fail") { failed++; printf "%s", buf[key]; delete buf[key] }
	}
	END {
		for (key in buf) if (buf[key] != "") { printf "--- unfinished: %s\n%s", key, buf[key] }
		printf "\ntests: %d passed, %d failed, %d skipped\n", passed, failed, skipped
	}'
}

status=0

# The race detector on the packages with concurrency of their own (about a minute here);
# the end-to-end and browser tests run without it.
step "go test -race (domain, token, postgres, httpapi, jobs, events, orgsevents)"
go test -race -count=1 ./internal/domain/... ./internal/token/... ./internal/postgres/... \
	./internal/httpapi/... ./internal/jobs/... ./internal/events/... ./orgsevents/... || status=1

step "go test ./..."
go test -json -count=1 -timeout 14m -p 2 ./... | tee .tmp/go-test.json | render || status=1

if [ "$status" != 0 ]; then
	echo "FAILED (see above; the raw go test stream is in .tmp/go-test.json)" >&2
fi
exit "$status"
