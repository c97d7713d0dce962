package events

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// RelayConfig configures a Relay. The zero value is usable.
type RelayConfig struct {
	// PollInterval is how often an idle relay looks for rows committed by other processes
	// (default 50ms). Rows committed in this process are picked up at once via Notify, and
	// those of other processes when their Notify (or WakeRelay) reaches it through NATS:
	// polling is the fallback for a wake that got lost.
	// After rows were found, or while committed rows wait for an older transaction, the
	// relay polls more often: from 1ms, doubling back up to PollInterval.
	PollInterval time.Duration
	// BatchSize is the most rows sequenced and published per round (default 2000; keep it
	// at most the JetStream context's async publish limit, 4000 by default).
	BatchSize int
	// Source is the CloudEvents source attribute (default "orgs").
	Source string
	// Retention is how long published rows are kept for replay (GET /v1/events) before
	// they are pruned (default 7 days).
	Retention time.Duration
	// PruneInterval is how often the leader prunes (default 1 minute).
	PruneInterval time.Duration
	// LockRetry is how often a standby relay tries to become the leader (default 1s), and
	// how often the leader checks its lock connection.
	LockRetry time.Duration
	// lockName overrides the relay lock's name: tests run two leaders at once with it.
	lockName string
	// AckTimeout bounds the wait for JetStream's acks of one batch (default 10s).
	AckTimeout time.Duration
	// Stream is the stream configuration the leader ensures when it takes over.
	Stream StreamConfig
}

func (c RelayConfig) withDefaults() RelayConfig {
	if c.PollInterval <= 0 {
		c.PollInterval = 50 * time.Millisecond
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.Source == "" {
		c.Source = DefaultSource
	}
	if c.Retention <= 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = time.Minute
	}
	if c.LockRetry <= 0 {
		c.LockRetry = time.Second
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 10 * time.Second
	}
	return c
}

// blockedPoll bounds the poll interval while committed rows wait for an older
// transaction, which may write no events and so wake nobody when it ends.
const blockedPoll = 10 * time.Millisecond

// relayLockName (with the schema name, so that test schemas don't contend) keys the session
// advisory lock whose holder is the one active relay.
const relayLockName = "orgs_outbox_relay"

// Relay publishes committed outbox rows to JetStream, in commit order per organization,
// each exactly once on the stream (JetStream's expected-last-sequence check keeps a retry
// from reordering or duplicating), and marks them published only after JetStream acked
// them. Any number of processes may run one: a session advisory lock elects one leader,
// the others stand by and take over within seconds when its connection goes.
type Relay struct {
	pool    *pgxpool.Pool
	js      jetstream.JetStream
	logger  zerolog.Logger
	metrics *Metrics
	cfg     RelayConfig
	wake    chan struct{}
	leading atomic.Bool // this relay leads: Notify wakes it in process

	// subjects caches Subject per event type.
	subjects map[string]string
}

// NewRelay returns a relay over the outbox in pool's schema. metrics may be nil. js should
// be created with jetstream.WithPublishAsyncMaxPending at least cfg.BatchSize (the default,
// 4000, is).
func NewRelay(pool *pgxpool.Pool, js jetstream.JetStream, logger zerolog.Logger, metrics *Metrics, cfg RelayConfig) *Relay {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Relay{
		pool:     pool,
		js:       js,
		logger:   logger.With().Str("component", "outbox_relay").Logger(),
		metrics:  metrics,
		cfg:      cfg.withDefaults(),
		wake:     make(chan struct{}, 1),
		subjects: make(map[string]string),
	}
}

// WakeSubject is the core NATS subject (not in the stream) on which a process that
// committed events wakes the leading relay of another process.
const WakeSubject = "orgs.relay.wake"

// Notify wakes the leading relay to look for new rows now: this one in process, else the
// leader in another process through NATS (WakeSubject). The store calls it after each
// commit that wrote outbox rows; it never blocks. (A pg_notify in the write transaction
// would reach other processes too, but it serializes commits: see BenchmarkWakeRelay and
// docs/events.md.) A wake that NATS loses costs a poll interval at most.
func (r *Relay) Notify() {
	if r.leading.Load() {
		r.notifyLocal()
		return
	}
	_ = r.js.Conn().Publish(WakeSubject, nil)
}

func (r *Relay) notifyLocal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// WakeRelay returns a function that wakes the leading relay (in another process) over
// nc: the AfterCommit of a process that commits events and runs no relay (cmd/reminder).
func WakeRelay(nc *nats.Conn) func() {
	return func() { _ = nc.Publish(WakeSubject, nil) }
}

// Run campaigns for leadership and, while leader, relays until ctx is done; then it
// returns nil. Transient failures (Postgres or NATS down) are logged and retried with
// backoff; Run never returns because of them.
func (r *Relay) Run(ctx context.Context) error {
	bo := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		start := time.Now()
		err := r.campaign(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			bo.reset()
		}
		d := bo.next()
		r.logger.Error().Err(err).Dur("retry_in", d).Msg("outbox relay")
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// campaign opens a dedicated connection, waits until it holds the relay lock, and leads
// until ctx is done or the connection fails. The lock is tied to the session: if this
// process dies, Postgres frees it when the connection closes.
func (r *Relay) campaign(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, r.pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("connect for relay lock: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	// Let the server notice a vanished leader host in ~10s rather than after the OS
	// default of hours, so that its lock is freed for a standby. Ignored on Unix sockets.
	_, _ = conn.Exec(ctx, `SELECT set_config('tcp_keepalives_idle', '5', false),
		set_config('tcp_keepalives_interval', '2', false), set_config('tcp_keepalives_count', '3', false)`)

	for {
		var ok bool
		name := relayLockName
		if r.cfg.lockName != "" {
			name = r.cfg.lockName
		}
		err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtext($1 || current_schema()))", name).Scan(&ok)
		if err != nil {
			return fmt.Errorf("try relay lock: %w", err)
		}
		if ok {
			break
		}
		if !sleep(ctx, r.cfg.LockRetry) {
			return ctx.Err()
		}
	}

	r.logger.Info().Msg("outbox relay is the leader")
	r.metrics.Leader.Set(1)
	defer func() {
		r.metrics.Leader.Set(0)
		r.metrics.OutboxPending.Set(0)
		r.metrics.OldestUnpublishedAge.Set(0)
	}()

	lctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Lead only while the lock's session is alive: once it is gone another relay may
		// take over. (Even a short overlap keeps the stream ordered: see publish.)
		t := time.NewTicker(r.cfg.LockRetry)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			pctx, pcancel := context.WithTimeout(lctx, 3*time.Second)
			_, err := conn.Exec(pctx, "SELECT 1")
			pcancel()
			if err != nil && lctx.Err() == nil {
				cancel(fmt.Errorf("relay lock connection: %w", err))
				return
			}
		}
	})
	r.lead(lctx)
	cause := context.Cause(lctx)
	cancel(nil)
	wg.Wait()
	r.logger.Info().Msg("outbox relay stopped leading")
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return cause
}

// leader is the state of one term as leader. Only the lead goroutine touches it.
type leader struct {
	// synced is set when streamSeq is known to be the stream's last sequence.
	synced bool
	// streamSeq is the stream sequence of the last message, the expected last sequence
	// of the next publish.
	streamSeq uint64
	// leftovers is set when rows may have a seq but no published_at (a failed or
	// interrupted publish); they go out before new rows get a seq.
	leftovers bool
	// next is the batch fetched while the previous one was going out; it goes out next.
	next []row
	// ackedFrom..ackedTo are the seqs of events JetStream acked that are not marked
	// published yet (none while ackedTo is 0). They are marked by the next fetch, which
	// overlaps the next publish, or at once when there is nothing more to publish.
	ackedFrom, ackedTo int64
	// blocked is set when the last fetch saw committed rows that it could not sequence
	// yet because an older transaction was still open.
	blocked bool
	// lastSeq and lastID are the seq and id of the stream's last event, as far as this
	// leader knows (lastSeq 0: unknown, as on an empty or expired stream). The next event
	// to publish must be lastSeq+1, and each message names its predecessor's id.
	lastSeq int64
	lastID  string
}

// ack records that JetStream acked the events from..to (following any acked before).
func (st *leader) ack(from, to int64) {
	if st.ackedTo == 0 {
		st.ackedFrom = from
	}
	st.ackedTo = to
}

// marked records that the acked events up to seq to are marked published.
func (st *leader) marked(to int64) {
	if st.ackedTo <= to {
		st.ackedFrom, st.ackedTo = 0, 0
	} else {
		st.ackedFrom = to + 1
	}
}

// lead relays until ctx is done.
func (r *Relay) lead(ctx context.Context) {
	st := &leader{leftovers: true}
	// Other processes' commits wake the leader through NATS; polling stays the fallback.
	if sub, err := r.js.Conn().Subscribe(WakeSubject, func(*nats.Msg) { r.notifyLocal() }); err != nil {
		r.logger.Warn().Err(err).Msg("subscribe to relay wakes: other processes' events wait for polling")
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	r.leading.Store(true)
	defer r.leading.Store(false)
	defer func() {
		// Record what JetStream acked even while stopping (if this fails, the next
		// leader's reconcile records it).
		if err := r.markAcked(ctx, st); err != nil {
			r.logger.Warn().Err(err).Msg("mark events published")
		}
	}()
	// The gauges that alerts watch are sampled on their own clock: a pass through a large
	// backlog must not freeze them.
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() { r.sampleEvery(sctx, sampleInterval) })
	defer func() {
		stopSampling()
		sampling.Wait()
	}()
	bo := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	// Polling is adaptive: tight (from 1ms, doubling) after rows were found or while
	// committed rows wait for an older transaction, every PollInterval once idle.
	idle := backoff{min: min(time.Millisecond, r.cfg.PollInterval), max: r.cfg.PollInterval}
	var lastPrune time.Time
	poll := time.NewTimer(0)
	defer poll.Stop()
	for ctx.Err() == nil {
		wasBlocked := st.blocked
		n, err := r.step(ctx, st)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			st.synced = false
			st.leftovers = true
			st.next = nil
			d := bo.next()
			r.logger.Warn().Err(err).Dur("retry_in", d).Msg("relay events")
			sleep(ctx, d)
			continue
		}
		bo.reset()

		now := time.Now()
		if now.Sub(lastPrune) >= r.cfg.PruneInterval {
			lastPrune = now
			if err := r.prune(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn().Err(err).Msg("prune outbox")
			}
		}
		if n > 0 || len(st.next) > 0 {
			// Rows keep coming: look again at once rather than after PollInterval.
			idle.reset()
			continue
		}
		d := idle.next()
		if st.blocked {
			if !wasBlocked {
				// Rows are committed but wait for an older transaction (possibly one in
				// another process, or one that writes no events and so never wakes us).
				idle.reset()
				d = idle.next()
			}
			d = min(d, blockedPoll)
		}
		poll.Reset(d)
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-poll.C:
		}
	}
}

// row is an outbox row on its way to the stream.
type row struct {
	id         string
	seq        int64
	typ        string
	subject    string
	data       []byte
	occurredAt time.Time
}

// step publishes one batch: the one fetched during the previous step, else rows already
// sequenced but not published, else the next rows to sequence. While the batch goes out
// and JetStream acks it, a second goroutine marks the previous batch published and
// fetches (sequences) the next one, so that Postgres and NATS work overlap. It returns
// how many rows it published.
func (r *Relay) step(ctx context.Context, st *leader) (int, error) {
	if !st.synced {
		if err := r.reconcile(ctx, st); err != nil {
			return 0, err
		}
	}
	rows := st.next
	st.next = nil
	if len(rows) == 0 {
		a := st.fetchArgs(0)
		res := r.fetch(ctx, a)
		if res.err != nil {
			return 0, res.err
		}
		st.applyFetch(a, res)
		rows = res.rows
	}
	if len(rows) == 0 {
		return 0, nil
	}

	// Sequencing the next batch before this one is acked is safe: a seq only fixes the
	// order. If this batch fails, the next one goes out again as leftovers, after it.
	a := st.fetchArgs(rows[len(rows)-1].seq)
	var res fetchResult
	done := make(chan struct{})
	go func() {
		defer close(done)
		res = r.fetch(ctx, a)
	}()
	acked, pubErr := r.publish(ctx, st, rows)
	<-done
	if acked > 0 {
		st.ack(rows[0].seq, rows[acked-1].seq)
	}
	if pubErr == nil && res.err == nil {
		// The next fetch marks this batch published, in its sequencing statement: the
		// relay fetches again at once after a step that published (a stop marks it too).
		st.applyFetch(a, res)
		return len(rows), nil
	}
	if res.err == nil && a.markTo != 0 {
		st.marked(a.markTo)
	}
	err := errors.Join(pubErr, res.err)
	if merr := r.markAcked(ctx, st); merr != nil {
		err = errors.Join(err, merr)
	}
	return acked, err
}

// fetchArgs says what the next fetch marks and reads: after is the last seq of the
// batch going out meanwhile (0 if none).
func (st *leader) fetchArgs(after int64) fetchArgs {
	return fetchArgs{markFrom: st.ackedFrom, markTo: st.ackedTo, leftovers: st.leftovers, after: after}
}

// applyFetch records the result of a successful fetch made with a.
func (st *leader) applyFetch(a fetchArgs, res fetchResult) {
	if a.markTo != 0 {
		st.marked(a.markTo)
	}
	st.leftovers, st.blocked, st.next = res.leftovers, res.blocked, res.rows
}

// fetchArgs is the input of a fetch: acked events to mark published first (none if
// markTo is 0), whether sequenced but unpublished rows may remain, and the last seq
// already on its way.
type fetchArgs struct {
	markFrom, markTo int64
	leftovers        bool
	after            int64
}

// fetchResult is the output of a fetch; leftovers and blocked are the new values of the
// leader's fields.
type fetchResult struct {
	rows      []row
	leftovers bool
	blocked   bool
	err       error
}

// fetch marks acked events published, then returns the next batch: sequenced but
// unpublished rows after a.after while there may be any, else newly sequenced rows. It
// runs beside publish and touches no leader state.
func (r *Relay) fetch(ctx context.Context, a fetchArgs) (res fetchResult) {
	res.leftovers = a.leftovers
	if a.leftovers {
		if a.markTo != 0 {
			if res.err = r.markPublished(ctx, a.markFrom, a.markTo); res.err != nil {
				return res
			}
			a.markTo = 0
		}
		if res.rows, res.err = r.unpublished(ctx, a.after); res.err != nil || len(res.rows) > 0 {
			return res
		}
		res.leftovers = false
	}
	res.rows, res.blocked, res.err = r.sequence(ctx, a.markFrom, a.markTo)
	return res
}

// markPublished sets published_at on the events with seqs from..to that lack it.
func (r *Relay) markPublished(ctx context.Context, from, to int64) error {
	_, err := r.pool.Exec(ctx, `UPDATE outbox SET published_at = now()
		WHERE seq BETWEEN $1 AND $2 AND published_at IS NULL`, from, to)
	if err != nil {
		return fmt.Errorf("mark events published: %w", err)
	}
	return nil
}

// markAcked marks every acked event published now, also while ctx is being cancelled
// when stopping.
func (r *Relay) markAcked(ctx context.Context, st *leader) error {
	if st.ackedTo == 0 {
		return nil
	}
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := r.markPublished(mctx, st.ackedFrom, st.ackedTo); err != nil {
		return err
	}
	st.ackedFrom, st.ackedTo = 0, 0
	return nil
}

const rowColumns = "id::text, seq, type, subject, data::text, occurred_at"

func scanRows(rows pgx.Rows) ([]row, error) {
	return pgx.CollectRows(rows, func(rs pgx.CollectableRow) (row, error) {
		var x row
		err := rs.Scan(&x.id, &x.seq, &x.typ, &x.subject, &x.data, &x.occurredAt)
		return x, err
	})
}

// unpublished returns the first batch of sequenced, unpublished rows after seq after, in
// seq order.
func (r *Relay) unpublished(ctx context.Context, after int64) ([]row, error) {
	rs, _ := r.pool.Query(ctx, `SELECT `+rowColumns+` FROM outbox
		WHERE seq > $2 AND seq IS NOT NULL AND published_at IS NULL ORDER BY seq LIMIT $1`, r.cfg.BatchSize, after)
	rows, err := scanRows(rs)
	if err != nil {
		return nil, fmt.Errorf("read unpublished events: %w", err)
	}
	return rows, nil
}

// sequenceSQL gives the next batch of rows their seq, in (xid, pos) order: commit order
// for each organization, whose transactions all lock its row first. Only rows of
// transactions older than the oldest one still running qualify (xid < xmin), so a
// transaction that started earlier but commits later is never passed over: its rows wait
// until it ends and then get the next seqs. Only the leader runs this, so max(seq) + n
// cannot race; the unique constraint on seq would stop a second relay that thought
// otherwise.
//
// It also marks the events with seqs $2..$3 published (the batch acked meanwhile), in the
// same statement to save a round trip and a commit: they are other rows than the ones it
// sequences, and the snapshot it reads is the statement's, from before either update.
//
// The rows that qualify come first in (xid, pos) order, so b holds the batch and, if it
// is short, the first committed rows that must still wait: then one more row, with seq
// 0, says so, and the relay polls again soon rather than after PollInterval.
const sequenceSQL = `
WITH marked AS (
	UPDATE outbox SET published_at = now()
	WHERE seq BETWEEN $2 AND $3 AND published_at IS NULL
), b AS (
	SELECT id, xid, pos, xid < (SELECT pg_snapshot_xmin(pg_current_snapshot())) AS ready
	FROM outbox WHERE seq IS NULL
	ORDER BY xid, pos
	LIMIT $1
), n AS (
	SELECT id, row_number() OVER (ORDER BY xid, pos) AS rn FROM b WHERE ready
), u AS (
	UPDATE outbox o SET seq = m.base + n.rn
	FROM n, (SELECT coalesce(max(seq), 0) AS base FROM outbox) m
	WHERE o.id = n.id AND o.seq IS NULL
	RETURNING o.id::text, o.seq, o.type, o.subject, o.data::text, o.occurred_at
)
SELECT * FROM u
UNION ALL
SELECT '', 0, '', '', '', now() WHERE EXISTS (SELECT FROM b WHERE NOT ready)`

// sequence marks the events with seqs markFrom..markTo published (none if markTo is 0),
// assigns seqs to the next batch and returns its rows in seq order, and whether committed
// rows wait for an older transaction.
func (r *Relay) sequence(ctx context.Context, markFrom, markTo int64) ([]row, bool, error) {
	rs, _ := r.pool.Query(ctx, sequenceSQL, r.cfg.BatchSize, markFrom, markTo)
	rows, err := scanRows(rs)
	if err != nil {
		return nil, false, fmt.Errorf("sequence events: %w", err)
	}
	blocked := false
	rows = slices.DeleteFunc(rows, func(x row) bool {
		if x.seq == 0 {
			blocked = true
			return true
		}
		return false
	})
	slices.SortFunc(rows, func(a, b row) int { return cmp.Compare(a.seq, b.seq) })
	return rows, blocked, nil
}

// publish sends rows (consecutive seqs) asynchronously, each expecting the stream's last
// sequence to be the previous one's: if any message is lost (NATS restarted between two
// publishes) every later one is rejected, so the stream never holds an event after a gap.
// It returns how many rows, from the first, JetStream acked in order; the caller marks
// them published. On any failure the caller reconciles with the stream before publishing
// again.
//
// Each message also names the id of the event before it (Nats-Expected-Last-Msg-Id), and
// a batch that does not follow the stream's last known event is not sent: while an old
// leader that lost its lock still publishes, a new one may have sequenced later rows than
// the old one's last; the stream sequence alone would let such a row in after a gap (the
// stream's positions filled by the other's messages), and reconcile would then mark the
// rows in the gap published. With the chain, the stream holds the events in seq order
// with none missing.
func (r *Relay) publish(ctx context.Context, st *leader, rows []row) (int, error) {
	if st.lastSeq != 0 && rows[0].seq != st.lastSeq+1 {
		return 0, fmt.Errorf("publish event seq %d: the stream's last event is seq %d; reconciling", rows[0].seq, st.lastSeq)
	}
	base := st.streamSeq
	futures := make([]jetstream.PubAckFuture, 0, len(rows))
	var pubErr error
	// One allocation each for the bodies, messages and header values of the batch: the
	// per-message garbage showed in the relay's profile.
	size := 0
	for _, x := range rows {
		size += 256 + len(x.id) + len(x.typ) + len(x.subject) + len(x.data)
	}
	buf := make([]byte, 0, size)
	msgs := make([]nats.Msg, len(rows))
	vals := make([]string, 4*len(rows))
	for i, x := range rows {
		if i > 0 && x.seq != rows[i-1].seq+1 {
			pubErr = fmt.Errorf("publish event seq %d: not consecutive to seq %d", x.seq, rows[i-1].seq)
			break
		}
		start := len(buf)
		buf = Envelope{ID: x.id, Source: r.cfg.Source, Type: x.typ, Subject: x.subject,
			Time: x.occurredAt, Seq: x.seq, Data: x.data}.AppendJSON(buf)
		v := vals[4*i : 4*i+4 : 4*i+4]
		v[0], v[1], v[2] = x.id, strconv.FormatInt(x.seq, 10), strconv.FormatUint(base+uint64(i), 10)
		m := &msgs[i]
		m.Subject = r.subject(x.typ)
		// The expected last sequence is set here rather than with
		// jetstream.WithExpectLastSequence, which allocates options per message.
		m.Header = nats.Header{nats.MsgIdHdr: v[0:1:1], HeaderSeq: v[1:2:2], jetstream.ExpectedLastSeqHeader: v[2:3:3]}
		switch {
		case i > 0:
			v[3] = rows[i-1].id
		case st.lastSeq != 0:
			v[3] = st.lastID
		}
		if v[3] != "" {
			m.Header[jetstream.ExpectedLastMsgIDHeader] = v[3:4:4]
		}
		m.Data = buf[start:len(buf):len(buf)]
		f, err := r.js.PublishMsgAsync(m)
		if err != nil {
			pubErr = fmt.Errorf("publish event %s: %w", x.id, err)
			break
		}
		futures = append(futures, f)
	}

	timeout := time.NewTimer(r.cfg.AckTimeout)
	defer timeout.Stop()
	acked := 0
	var ackErr error
	var counter prometheus.Counter
	counterType := ""
wait:
	for i, f := range futures {
		x := rows[i]
		select {
		case ack := <-f.Ok():
			// A duplicate ack (servers that check Nats-Msg-Id before the expected
			// sequence) or any other sequence means the stream is not where we
			// thought: stop and reconcile.
			if ack.Duplicate || ack.Stream != StreamName || ack.Sequence != base+uint64(i)+1 {
				ackErr = fmt.Errorf("publish event %s: unexpected ack (stream %s seq %d duplicate %t), want seq %d",
					x.id, ack.Stream, ack.Sequence, ack.Duplicate, base+uint64(i)+1)
				break wait
			}
			acked++
			if counter == nil || x.typ != counterType {
				counter, counterType = r.metrics.Published.WithLabelValues(x.typ), x.typ
			}
			counter.Inc()
			r.metrics.PublishLatency.Observe(time.Since(x.occurredAt).Seconds())
		case err := <-f.Err():
			ackErr = fmt.Errorf("publish event %s: %w", x.id, err)
			break wait
		case <-timeout.C:
			ackErr = fmt.Errorf("publish event %s: no ack after %s", x.id, r.cfg.AckTimeout)
			break wait
		case <-ctx.Done():
			ackErr = ctx.Err()
			break wait
		}
	}
	st.streamSeq = base + uint64(acked)
	if acked > 0 {
		st.lastSeq, st.lastID = rows[acked-1].seq, rows[acked-1].id
	}
	return acked, errors.Join(pubErr, ackErr)
}

// subject returns Subject(typ), remembered per type (only the lead goroutine calls it).
func (r *Relay) subject(typ string) string {
	s, ok := r.subjects[typ]
	if !ok {
		s = Subject(typ)
		r.subjects[typ] = s
	}
	return s
}

// reconcile learns where the stream stands from its last message (its Orgs-Seq header)
// and marks every outbox row up to it published: after a failure the acks are not to be
// trusted (a message may be stored with its ack lost, or lost after an earlier one was
// stored). It creates the stream if it is missing.
//
// JetStream checks the expected last sequence before Nats-Msg-Id de-duplication
// (nats-server 2.10+, processJetStreamMsg), so a retry of a stored event is rejected as
// out of sequence rather than acked as a duplicate; older servers ack it as a duplicate,
// which publish also treats as a reason to reconcile. Either way nothing is published
// after the stream's last event until this has run.
func (r *Relay) reconcile(ctx context.Context, st *leader) error {
	stream, err := EnsureStream(ctx, r.js, r.cfg.Stream)
	if err != nil {
		return err
	}
	info := stream.CachedInfo()
	last := info.State.LastSeq
	st.streamSeq, st.synced, st.leftovers, st.next = last, false, true, nil
	st.lastSeq, st.lastID = 0, ""
	if last == 0 {
		st.synced = true
		return nil
	}
	msg, err := stream.GetMsg(ctx, last)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		// Expired by MaxAge: everything on the stream is older than the retention, so
		// what the outbox says is all there is to know.
		st.synced = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("read last event on stream: %w", err)
	}
	seq, err := strconv.ParseInt(msg.Header.Get(HeaderSeq), 10, 64)
	if err != nil {
		r.logger.Error().Uint64("stream_seq", last).Msg("last message on the stream has no Orgs-Seq header; not ours")
		st.synced = true
		return nil
	}
	id := msg.Header.Get(nats.MsgIdHdr)
	var dbID string
	var maxSeq int64
	err = r.pool.QueryRow(ctx, `SELECT coalesce((SELECT id::text FROM outbox WHERE seq = $1), ''),
		coalesce((SELECT max(seq) FROM outbox), 0)`, seq).Scan(&dbID, &maxSeq)
	if err != nil {
		return fmt.Errorf("reconcile with stream: %w", err)
	}
	switch {
	case dbID == "" && maxSeq < seq, dbID != "" && dbID != id:
		// The stream was written from another database (a dev reset). Marking rows
		// published by number would lose them; trust the outbox instead.
		r.logger.Error().Int64("stream_event_seq", seq).Str("stream_event_id", id).Str("outbox_event_id", dbID).
			Int64("outbox_max_seq", maxSeq).Msg("stream does not match the outbox; publishing by the outbox")
	default:
		tag, err := r.pool.Exec(ctx, `UPDATE outbox SET published_at = now()
			WHERE seq <= $1 AND seq IS NOT NULL AND published_at IS NULL`, seq)
		if err != nil {
			return fmt.Errorf("reconcile with stream: %w", err)
		}
		// Everything JetStream acked is on the stream, so up to seq.
		st.ackedFrom, st.ackedTo = 0, 0
		st.lastSeq, st.lastID = seq, id
		if n := tag.RowsAffected(); n > 0 {
			r.logger.Info().Int64("events", n).Int64("up_to_seq", seq).Msg("found events already on the stream")
		}
	}
	st.synced = true
	return nil
}

// sampleInterval is how often the leader samples the outbox gauges.
const sampleInterval = 2 * time.Second

// sampleEvery samples the outbox gauges at once and then every interval until ctx ends.
func (r *Relay) sampleEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, interval)
		err := r.sample(qctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.logger.Warn().Err(err).Msg("sample outbox metrics")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sample updates the pending and oldest-age gauges. Both subqueries use the outbox's
// partial indexes, so this stays cheap with a large backlog.
func (r *Relay) sample(ctx context.Context) error {
	var pending int64
	var oldest *time.Time
	err := r.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM outbox WHERE seq IS NULL) +
		(SELECT count(*) FROM outbox WHERE seq IS NOT NULL AND published_at IS NULL),
		least((SELECT occurred_at FROM outbox WHERE seq IS NOT NULL AND published_at IS NULL ORDER BY seq LIMIT 1),
		      (SELECT occurred_at FROM outbox WHERE seq IS NULL ORDER BY xid, pos LIMIT 1))`).Scan(&pending, &oldest)
	if err != nil {
		return fmt.Errorf("sample outbox: %w", err)
	}
	r.metrics.OutboxPending.Set(float64(pending))
	age := 0.0
	if oldest != nil {
		age = max(time.Since(*oldest).Seconds(), 0)
	}
	r.metrics.OldestUnpublishedAge.Set(age)
	return nil
}

// prune deletes published rows older than the retention, in small batches so as not to
// hold locks or bloat WAL. The row with the highest seq is always kept: the next seq is
// counted from it.
func (r *Relay) prune(ctx context.Context) error {
	const batch = 1000
	total := int64(0)
	for ctx.Err() == nil {
		tag, err := r.pool.Exec(ctx, `DELETE FROM outbox WHERE id IN (
			SELECT id FROM outbox
			WHERE published_at < now() - $1 * interval '1 second'
			  AND seq < (SELECT max(seq) FROM outbox)
			LIMIT $2)`, r.cfg.Retention.Seconds(), batch)
		if err != nil {
			return fmt.Errorf("prune outbox: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			break
		}
	}
	if total > 0 {
		r.logger.Info().Int64("events", total).Msg("pruned outbox")
	}
	return nil
}

// backoff doubles a delay from min to max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or ctx; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
