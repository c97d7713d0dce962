package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMetricsSumsSeries(t *testing.T) {
	text := `# HELP orgs_db_round_trips_total Round trips.
# TYPE orgs_db_round_trips_total counter
orgs_db_round_trips_total 1234
orgs_http_requests_total{method="POST",route="x",code="201"} 10
orgs_http_requests_total{method="GET",route="y {z}",code="200"} 5.5
orgs_db_org_lock_held_seconds_sum 0.25
orgs_db_org_lock_held_seconds_count 7
process_cpu_seconds_total 1.5e+00
`
	m, err := parseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"orgs_db_round_trips_total": 1234, "orgs_http_requests_total": 15.5,
		"orgs_db_org_lock_held_seconds_sum": 0.25, "orgs_db_org_lock_held_seconds_count": 7, "process_cpu_seconds_total": 1.5,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: got %v, want %v", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("got %d metrics, want %d: %v", len(m), len(want), m)
	}
}

func TestProcessCPUFindsThisProcess(t *testing.T) {
	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // the kernel's comm
	}
	before := processCPU([]string{self})[self]
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	after := processCPU([]string{self})[self]
	if after-before < 0.1 {
		t.Errorf("CPU of %s: %.2fs before, %.2fs after 300 ms of spinning: want at least 0.1s more", self, before, after)
	}
}
