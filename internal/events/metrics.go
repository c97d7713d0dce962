package events

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Metrics are the relay's Prometheus metrics.
type Metrics struct {
	// OutboxPending counts outbox rows not yet published (sampled by the leader).
	OutboxPending prometheus.Gauge
	// OldestUnpublishedAge is the age of the oldest unpublished row, 0 when none.
	OldestUnpublishedAge prometheus.Gauge
	// Published counts events acked by JetStream, by type.
	Published *prometheus.CounterVec
	// PublishLatency is the time from the event's transaction to JetStream's ack.
	PublishLatency prometheus.Histogram
	// Leader is 1 while this process's relay holds the relay lock.
	Leader prometheus.Gauge
}

// NewMetrics creates the relay metrics and registers them on reg (if reg is not nil). It
// panics if they are already registered there, a programming error.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		OutboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orgs_outbox_pending",
			Help: "Outbox rows not yet published to JetStream (sampled by the relay leader).",
		}),
		OldestUnpublishedAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orgs_outbox_oldest_unpublished_age_seconds",
			Help: "Age of the oldest outbox row not yet published, 0 when none.",
		}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "orgs_events_published_total",
			Help: "Events acked by JetStream, by type.",
		}, []string{"type"}),
		PublishLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "orgs_event_publish_latency_seconds",
			Help:    "Time from the event's transaction to JetStream's ack.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1ms .. 33s
		}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "orgs_relay_leader",
			Help: "1 while this process's outbox relay is the active one.",
		}),
	}
	// Every type has a series from the start, so that rate() and absent() alerts work
	// before the first event of a type.
	for _, t := range domain.EventTypes {
		m.Published.WithLabelValues(string(t))
	}
	if reg != nil {
		reg.MustRegister(m.OutboxPending, m.OldestUnpublishedAge, m.Published, m.PublishLatency, m.Leader)
	}
	return m
}
