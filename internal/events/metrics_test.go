package events_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/events"
)

// TestMetricsHaveSeriesFromTheStart: an alert on a metric that has no series yet never
// fires, so every relay metric (and every event type's counter) exists at zero.
func TestMetricsHaveSeriesFromTheStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	events.NewMetrics(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	types := map[string]bool{}
	for _, f := range families {
		series[f.GetName()] = len(f.GetMetric())
		if f.GetName() == "orgs_events_published_total" {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					types[l.GetValue()] = true
				}
			}
		}
	}
	for _, name := range []string{"orgs_outbox_pending", "orgs_outbox_oldest_unpublished_age_seconds", "orgs_event_publish_latency_seconds", "orgs_relay_leader"} {
		if series[name] != 1 {
			t.Errorf("%s: %d series, want 1", name, series[name])
		}
	}
	for _, typ := range domain.EventTypes {
		if !types[string(typ)] {
			t.Errorf("orgs_events_published_total{type=%q}: no series", typ)
		}
	}
}
