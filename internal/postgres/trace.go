package postgres

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// orgLockMark marks the statements that take an organization's row lock, so that
// DBMetrics can time how long the lock was waited for and held.
const orgLockMark = "/* orgs:org-lock */"

// DBMetrics counts a process's work on Postgres as pgx sees it, and times the
// organization locks its transactions take. It is a pgx tracer: Open installs it on every
// connection of the pool.
//
//	orgs_db_round_trips_total            a query, a batch, a prepare, begin and commit: one each
//	orgs_db_statements_total             statements sent (a batch counts each of its own)
//	orgs_db_org_lock_wait_seconds        from sending the locking statement to its answer
//	orgs_db_org_lock_held_seconds        from that answer to the end of the transaction
type DBMetrics struct {
	roundTrips prometheus.Counter
	statements prometheus.Counter
	lockWait   prometheus.Histogram
	lockHeld   prometheus.Histogram

	mu     sync.Mutex
	locked map[*pgx.Conn]time.Time // connections whose transaction holds an organization lock
}

// NewDBMetrics creates the metrics and registers them with reg.
func NewDBMetrics(reg prometheus.Registerer) *DBMetrics {
	buckets := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}
	m := &DBMetrics{
		roundTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orgs", Subsystem: "db", Name: "round_trips_total",
			Help: "Round trips to Postgres: each query, batch, prepare, begin and commit.",
		}),
		statements: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "orgs", Subsystem: "db", Name: "statements_total",
			Help: "Statements sent to Postgres (each statement of a batch counts).",
		}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "orgs", Subsystem: "db", Name: "org_lock_wait_seconds", Buckets: buckets,
			Help: "Time from sending the statement that locks an organization to its answer (the wait for the lock, and the statements batched with it).",
		}),
		lockHeld: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "orgs", Subsystem: "db", Name: "org_lock_held_seconds", Buckets: buckets,
			Help: "Time an organization's lock was held: from the locking statement's answer to the answer of the transaction's commit or rollback.",
		}),
		locked: map[*pgx.Conn]time.Time{},
	}
	reg.MustRegister(m.roundTrips, m.statements, m.lockWait, m.lockHeld)
	return m
}

type traceKey struct{}

// traceStart is what a traced call carries from its start to its end.
type traceStart struct {
	at   time.Time
	lock bool // the call (or a statement of the batch) locks an organization
}

// TraceQueryStart implements pgx.QueryTracer.
func (m *DBMetrics) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	m.roundTrips.Inc()
	m.statements.Inc()
	return context.WithValue(ctx, traceKey{}, &traceStart{at: time.Now(), lock: strings.Contains(data.SQL, orgLockMark)})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (m *DBMetrics) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	st, _ := ctx.Value(traceKey{}).(*traceStart)
	if st == nil {
		return
	}
	now := time.Now()
	if st.lock {
		m.acquired(conn, st.at, now)
		return
	}
	if tag := data.CommandTag.String(); tag == "COMMIT" || tag == "ROLLBACK" || conn.PgConn().TxStatus() == 'I' {
		m.released(conn, now)
	}
}

// TraceBatchStart implements pgx.BatchTracer.
func (m *DBMetrics) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	m.roundTrips.Inc()
	st := &traceStart{at: time.Now()}
	if data.Batch != nil {
		m.statements.Add(float64(data.Batch.Len()))
		for _, q := range data.Batch.QueuedQueries {
			if strings.Contains(q.SQL, orgLockMark) {
				st.lock = true
			}
		}
	}
	return context.WithValue(ctx, traceKey{}, st)
}

// TraceBatchQuery implements pgx.BatchTracer: the first statement's answer is the batch's
// answer.
func (m *DBMetrics) TraceBatchQuery(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	st, _ := ctx.Value(traceKey{}).(*traceStart)
	if st != nil && st.lock && data.Err == nil && strings.Contains(data.SQL, orgLockMark) {
		m.acquired(conn, st.at, time.Now())
		st.lock = false
	}
}

// TraceBatchEnd implements pgx.BatchTracer.
func (m *DBMetrics) TraceBatchEnd(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if conn.PgConn().TxStatus() == 'I' {
		m.released(conn, time.Now())
	}
}

// TracePrepareStart implements pgx.PrepareTracer: the statement cache prepares each new
// statement once per connection, in a round trip of its own.
func (m *DBMetrics) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	m.roundTrips.Inc()
	return ctx
}

// TracePrepareEnd implements pgx.PrepareTracer.
func (m *DBMetrics) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// acquired records that conn's transaction got an organization's lock at now, after asking
// for it at asked. A transaction that locks several times holds it from the first.
func (m *DBMetrics) acquired(conn *pgx.Conn, asked, now time.Time) {
	m.lockWait.Observe(now.Sub(asked).Seconds())
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.locked[conn]; !ok {
		m.locked[conn] = now
	}
}

// released records that conn's transaction ended at now.
func (m *DBMetrics) released(conn *pgx.Conn, now time.Time) {
	m.mu.Lock()
	at, ok := m.locked[conn]
	delete(m.locked, conn)
	m.mu.Unlock()
	if ok {
		m.lockHeld.Observe(now.Sub(at).Seconds())
	}
}
