package jobs

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// discardedLimit bounds the rows one scrape counts.
const discardedLimit = 100_000

// discardedTimeout bounds the query of one scrape.
const discardedTimeout = 2 * time.Second

// DiscardedCollector exports orgs_jobs_discarded{kind}: the jobs that River holds in
// state discarded, of every process and by every path (the last attempt failed, or the
// leader's rescuer gave a stuck job up), read from river_job at each scrape. Neither the
// rescuer nor River's events tell a process about a job the rescuer discards, so the
// table is the one exact source. A job leaves the count when it is retried (River UI) or
// when River's cleaner deletes it (7 days). The query walks River's (state, finalized_at)
// index over discarded jobs only, and counts at most 100,000 of them.
//
// Every known kind has a series from the start; a kind orgs no longer has counts as
// kind="other".
type DiscardedCollector struct {
	pool   *pgxpool.Pool
	logger zerolog.Logger
	desc   *prometheus.Desc
}

// NewDiscardedCollector returns the collector; register it on the process's registry.
func NewDiscardedCollector(pool *pgxpool.Pool, logger zerolog.Logger) *DiscardedCollector {
	return &DiscardedCollector{pool: pool, logger: logger, desc: prometheus.NewDesc(
		"orgs_jobs_discarded",
		"Jobs River holds discarded (attempts exhausted, or given up by the rescuer), by kind, for every process; read from river_job at scrape time.",
		[]string{"kind"}, nil,
	)}
}

// Describe implements prometheus.Collector.
func (c *DiscardedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector. When the database does not answer, it logs
// and exports nothing (the scrape's other metrics still go out).
func (c *DiscardedCollector) Collect(ch chan<- prometheus.Metric) {
	counts, err := c.count()
	if err != nil {
		c.logger.Warn().Err(err).Msg("count discarded jobs")
		return
	}
	for kind, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, n, kind)
	}
}

func (c *DiscardedCollector) count() (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), discardedTimeout)
	defer cancel()
	rows, err := c.pool.Query(ctx, `
		SELECT kind, count(*) FROM (
			SELECT kind FROM river_job WHERE state = 'discarded' AND finalized_at IS NOT NULL LIMIT $1
		) discarded GROUP BY kind`, discardedLimit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := make(map[string]float64, len(kinds)+1)
	for _, k := range kinds {
		counts[k.name] = 0
	}
	for rows.Next() {
		var (
			kind string
			n    int64
		)
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		if _, known := counts[kind]; !known {
			kind = "other"
		}
		counts[kind] += float64(n)
	}
	return counts, rows.Err()
}
