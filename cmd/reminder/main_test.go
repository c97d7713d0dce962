package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	t.Parallel()
	env := proctest.Env(t)
	p := proctest.Start(t, run, []string{"reminder"}, env)
	ops := "http://" + env["ORGS_METRICS_ADDR"]
	p.WaitReady(t, ops+"/readyz")
	proctest.CheckOps(t, ops)
	p.Stop(t)
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	proctest.CheckHelp(t, run, "reminder")
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	proctest.CheckBadConfig(t, run, "reminder")
}
