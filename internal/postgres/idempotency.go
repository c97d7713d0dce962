package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/orgs-dev/orgs/internal/domain"
)

// Idempotency is a request with an Idempotency-Key on its way through the API. The HTTP
// layer puts it in the request's context (WithIdempotency) and arms it once the request
// reaches an endpoint; the first write transaction of the request then claims the key in
// its first round trip (an INSERT sent in one batch with the transaction's first
// statement, usually the organization's lock) and, instead of committing, parks: the
// handler renders its response, and Commit stores that response in the key's row and
// commits the change and the key together. A crash at any moment leaves either nothing
// (a retry does the work once) or the change with its response (a retry gets it).
//
// A second request with the same key blocks on the first one's uncommitted row (Postgres
// makes a conflicting INSERT wait for the transaction that holds it), then finds the key
// taken: its transaction rolls back with domain.ErrIdempotencyKeyUsed and the HTTP layer
// replays the stored response.
type Idempotency struct {
	Scope       []byte // a hash of the caller's credential, method and path
	Key         string
	RequestHash []byte // SHA-256 of the body

	armed  bool
	used   bool // a write transaction has taken the claim
	replay bool // the key belongs to a request that committed before
	parked *parkedTx
}

// parkedTx is a write transaction that has done its work and waits for its response.
type parkedTx struct {
	store *Store
	tx    pgx.Tx
	c     *change
}

type idempotencyKey struct{}

// WithIdempotency returns ctx carrying k.
func WithIdempotency(ctx context.Context, k *Idempotency) context.Context {
	return context.WithValue(ctx, idempotencyKey{}, k)
}

// idempotencyFrom returns the armed, not yet used Idempotency of ctx, or nil.
func idempotencyFrom(ctx context.Context) *Idempotency {
	k, _ := ctx.Value(idempotencyKey{}).(*Idempotency)
	if k == nil || !k.armed || k.used {
		return nil
	}
	return k
}

// Arm lets the request's first write transaction claim the key: the request has reached
// an endpoint (an unknown path or a failed authentication keeps no key).
func (k *Idempotency) Arm() { k.armed = true }

// ArmIdempotency arms the Idempotency of ctx, if it has one.
func ArmIdempotency(ctx context.Context) {
	if k, _ := ctx.Value(idempotencyKey{}).(*Idempotency); k != nil {
		k.Arm()
	}
}

// Armed reports whether Arm was called.
func (k *Idempotency) Armed() bool { return k.armed }

// Parked reports whether a write transaction waits for Commit or Rollback.
func (k *Idempotency) Parked() bool { return k.parked != nil }

// Replay reports whether the request's write found the key taken by a committed request:
// its response is to be replayed (FindIdempotentResponse).
func (k *Idempotency) Replay() bool { return k.replay }

// Commit stores the response of the parked transaction's request in the key's row,
// writes the transaction's events and jobs, and commits. The response is stored as
// given (the caller seals it).
func (k *Idempotency) Commit(ctx context.Context, status int, contentType string, body []byte) error {
	p := k.parked
	if p == nil {
		return errors.New("commit idempotent request: no parked transaction")
	}
	k.parked = nil
	if body == nil {
		body = []byte{}
	}
	err := p.store.finish(ctx, p.tx, p.c, &pgx.QueuedQuery{
		SQL:       `UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5 WHERE scope = $1 AND key = $2`,
		Arguments: []any{k.Scope, k.Key, status, contentType, body},
	})
	if err != nil {
		return translate(err)
	}
	return nil
}

// Rollback abandons the parked transaction, if any: the change and the key are gone.
func (k *Idempotency) Rollback(ctx context.Context) {
	if p := k.parked; p != nil {
		k.parked = nil
		_ = p.tx.Rollback(context.WithoutCancel(ctx))
	}
}

// reader is what a read that may follow the request's own write uses: the parked
// transaction of ctx's Idempotency, whose change is not yet committed (the response that
// reports it is being made), else the pool.
func (s *Store) reader(ctx context.Context) interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
} {
	if k, _ := ctx.Value(idempotencyKey{}).(*Idempotency); k != nil && k.parked != nil {
		return k.parked.tx
	}
	return s.pool
}

// claimSQL claims a key inside a write transaction ($1 scope, $2 key, $3 request hash):
// a row, and true, when the key is new; no row when a committed request holds it (it waits
// for an uncommitted one).
const claimSQL = `
	INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
	ON CONFLICT (scope, key) DO NOTHING
	RETURNING true`

// IdempotentResponse is a stored response of an Idempotency-Key request.
type IdempotentResponse struct {
	RequestHash []byte
	Status      int
	ContentType string
	Body        []byte
}

// SaveIdempotentResponse keeps the response of a request that made no change of its own
// (it was refused before or inside its transaction, or changes nothing), unless a request
// with the key committed before: then it returns that one's response (for the caller to
// replay, or to refuse with domain.ErrIdempotencyConflict when RequestHash differs). It
// waits for a transaction that holds the key uncommitted.
func (s *Store) SaveIdempotentResponse(ctx context.Context, k *Idempotency, status int, contentType string, body []byte) (*IdempotentResponse, error) {
	if body == nil {
		body = []byte{}
	}
	// A few rounds cover a row pruned between the INSERT and the SELECT.
	for range 3 {
		tag, err := s.pool.Exec(ctx, `
			INSERT INTO idempotency_keys (scope, key, request_hash, status, content_type, body)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (scope, key) DO NOTHING`, k.Scope, k.Key, k.RequestHash, status, contentType, body)
		if err != nil {
			return nil, fmt.Errorf("save idempotent response: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return nil, nil
		}
		stored, err := s.FindIdempotentResponse(ctx, k)
		if err != nil || stored != nil {
			return stored, err
		}
	}
	return nil, errors.New("save idempotent response: the key keeps changing")
}

// FindIdempotentResponse returns the stored response of the request that holds k's key,
// or nil when there is none.
func (s *Store) FindIdempotentResponse(ctx context.Context, k *Idempotency) (*IdempotentResponse, error) {
	var r IdempotentResponse
	err := s.pool.QueryRow(ctx, `
		SELECT request_hash, status, content_type, coalesce(body, ''::bytea)
		FROM idempotency_keys WHERE scope = $1 AND key = $2`, k.Scope, k.Key).
		Scan(&r.RequestHash, &r.Status, &r.ContentType, &r.Body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find idempotent response: %w", err)
	}
	return &r, nil
}

// SameRequest reports whether r answers a request with k's body.
func (r *IdempotentResponse) SameRequest(k *Idempotency) bool {
	return bytes.Equal(r.RequestHash, k.RequestHash)
}

// PruneIdempotencyKeys deletes the keys claimed more than olderThan ago (never less than
// 24 h: the contract replays for at least that long) and returns how many went. It
// deletes in batches so that no one statement holds many locks or runs long.
func (s *Store) PruneIdempotencyKeys(ctx context.Context, olderThan time.Duration) (int64, error) {
	const batch = 10000
	olderThan = max(olderThan, 24*time.Hour)
	var total int64
	for {
		tag, err := s.pool.Exec(ctx, `
			DELETE FROM idempotency_keys WHERE ctid = ANY (ARRAY(
				SELECT ctid FROM idempotency_keys
				WHERE created_at < now() - make_interval(secs => $1)
				LIMIT $2))`, olderThan.Seconds(), batch)
		if err != nil {
			return total, fmt.Errorf("prune idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < batch {
			return total, nil
		}
	}
}

// claimTx is the pgx.Tx of a write transaction that claims an idempotency key: the
// claim's INSERT goes out in one batch with the transaction's first statement, so it
// costs no round trip of its own. When the key turns out taken, that statement fails
// with domain.ErrIdempotencyKeyUsed and the transaction rolls back.
type claimTx struct {
	pgx.Tx
	k    *Idempotency
	sent bool
}

func (t *claimTx) claimQuery() *pgx.QueuedQuery {
	return &pgx.QueuedQuery{SQL: claimSQL, Arguments: []any{t.k.Scope, t.k.Key, t.k.RequestHash}}
}

// readClaim reads the claim's result, the first of br.
func (t *claimTx) readClaim(br pgx.BatchResults) error {
	t.sent = true
	var ok bool
	err := br.QueryRow().Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		t.k.replay = true
		return domain.ErrIdempotencyKeyUsed
	}
	if err != nil {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	return nil
}

// flush sends the claim on its own, for a first statement that cannot share its batch.
func (t *claimTx) flush(ctx context.Context) error {
	if t.sent {
		return nil
	}
	b := &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{t.claimQuery()}}
	br := t.Tx.SendBatch(ctx, b)
	err := t.readClaim(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// SendBatch sends b with the claim in front of it.
func (t *claimTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if t.sent {
		return t.Tx.SendBatch(ctx, b)
	}
	nb := &pgx.Batch{QueuedQueries: append([]*pgx.QueuedQuery{t.claimQuery()}, b.QueuedQueries...)}
	br := t.Tx.SendBatch(ctx, nb)
	return &claimBatchResults{BatchResults: br, err: t.readClaim(br)}
}

func (t *claimTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.sent {
		return t.Tx.QueryRow(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := t.SendBatch(ctx, b)
	return &batchRow{br: br, row: br.QueryRow()}
}

func (t *claimTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.sent {
		return t.Tx.Exec(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := t.SendBatch(ctx, b)
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return tag, err
}

func (t *claimTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Query(ctx, sql, args...)
}

func (t *claimTx) Begin(ctx context.Context) (pgx.Tx, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.Tx.Begin(ctx)
}

func (t *claimTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.Tx.CopyFrom(ctx, table, columns, src)
}

// claimBatchResults are the results of a batch sent behind a claim: when the key was
// taken, every result is that error.
type claimBatchResults struct {
	pgx.BatchResults
	err error
}

func (r *claimBatchResults) Exec() (pgconn.CommandTag, error) {
	if r.err != nil {
		return pgconn.CommandTag{}, r.err
	}
	return r.BatchResults.Exec()
}

func (r *claimBatchResults) Query() (pgx.Rows, error) {
	if r.err != nil {
		return nil, r.err
	}
	return r.BatchResults.Query()
}

func (r *claimBatchResults) QueryRow() pgx.Row {
	if r.err != nil {
		return errRow{r.err}
	}
	return r.BatchResults.QueryRow()
}

func (r *claimBatchResults) Close() error {
	err := r.BatchResults.Close()
	if r.err != nil {
		return r.err
	}
	return err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRow is the one row of a one-statement batch; Scan closes the batch.
type batchRow struct {
	br  pgx.BatchResults
	row pgx.Row
}

func (r *batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}
