package postgres

import "github.com/prometheus/client_golang/prometheus"

// RoundTrips is orgs_db_round_trips_total, for tests.
func (m *DBMetrics) RoundTrips() prometheus.Counter { return m.roundTrips }

// Statements is orgs_db_statements_total, for tests.
func (m *DBMetrics) Statements() prometheus.Counter { return m.statements }

// Holding is how many connections DBMetrics counts as holding an organization's lock.
func (m *DBMetrics) Holding() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.locked)
}

// JoinableOrgsSQL is the query of the organizations a user joins on activation.
const JoinableOrgsSQL = joinableOrgsSQL
