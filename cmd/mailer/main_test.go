package main

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/orgs-dev/orgs/internal/jobs"
	"github.com/orgs-dev/orgs/internal/mail"
	"github.com/orgs-dev/orgs/internal/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRun(t *testing.T) {
	t.Parallel()
	env := proctest.Env(t)
	p := proctest.Start(t, run, []string{"mailer"}, env)
	ops := "http://" + env["ORGS_METRICS_ADDR"]
	p.WaitReady(t, ops+"/readyz")
	// Every kind, of every process, has its discarded-job series from the start.
	var want []string
	for _, k := range jobs.Kinds() {
		want = append(want, `orgs_jobs_discarded_total{kind="`+k+`"} 0`, `orgs_jobs_discarded{kind="`+k+`"} 0`)
	}
	for _, tmpl := range mail.Templates {
		want = append(want, `orgs_mail_sent_total{result="sent",template="`+tmpl+`"} 0`)
	}
	proctest.CheckOps(t, ops, want...)
	p.Stop(t)
}

func TestRunHelp(t *testing.T) {
	t.Parallel()
	proctest.CheckHelp(t, run, "mailer")
}

func TestRunBadConfig(t *testing.T) {
	t.Parallel()
	proctest.CheckBadConfig(t, run, "mailer")
}
