package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/postgres/postgrestest"
	"github.com/orgs-dev/orgs/internal/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	t.Parallel()
	env := proctest.Env(t)
	p := proctest.Start(t, run, []string{"api"}, env)
	ops := "http://" + env["ORGS_METRICS_ADDR"]
	api := "http://" + env["ORGS_HTTP_ADDR"]
	p.WaitReady(t, ops+"/readyz")
	p.WaitReady(t, api+"/readyz")
	if code, _ := proctest.Get(api + "/healthz"); code != http.StatusOK {
		t.Errorf("GET /healthz on the API address: got %d, want 200", code)
	}
	if code, body := proctest.Get(api + "/openapi.json"); code != http.StatusOK || !strings.Contains(body, `"openapi"`) {
		t.Errorf("GET /openapi.json: got %d, want 200 with an OpenAPI document", code)
	}
	proctest.CheckOps(t, ops, "orgs_http_requests_total", "orgs_outbox_pending")
	p.Stop(t)
}

func TestRunMigrate(t *testing.T) {
	t.Parallel()
	env := proctest.Env(t)
	getenv := func(k string) string { return env[k] }
	// A fresh, empty schema: postgrestest's is migrated already.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, postgrestest.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := fmt.Sprintf("test_migrate_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	env["ORGS_DATABASE_URL"] = postgrestest.SchemaURL(postgrestest.URL(), schema)

	for i := range 2 { // the second run finds nothing to do
		logs := &proctest.Logs{}
		if err := run(ctx, []string{"api", "migrate"}, getenv, logs); err != nil {
			t.Fatalf("api migrate (run %d): got %v, want nil; logs:\n%s", i+1, err, logs)
		}
	}
	for _, table := range []string{"organizations", "outbox", "river_job"} {
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", schema+"."+table).Scan(&ok); err != nil || !ok {
			t.Errorf("after api migrate: table %s missing (err %v)", table, err)
		}
	}
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	proctest.CheckHelp(t, run, "api")
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	proctest.CheckBadConfig(t, run, "api")
}
