package httpapi

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
	"github.com/orgs-dev/orgs/internal/postgres"
)

// idempotencyStore keeps the responses of Idempotency-Key requests; postgres.Store
// implements it. The key of a request that changes something is claimed and completed by
// the change's own transaction (postgres.Idempotency); these two serve the rest.
type idempotencyStore interface {
	SaveIdempotentResponse(ctx context.Context, k *postgres.Idempotency, status int, contentType string, body []byte) (*postgres.IdempotentResponse, error)
	FindIdempotentResponse(ctx context.Context, k *postgres.Idempotency) (*postgres.IdempotentResponse, error)
}

// maxStoredResponse bounds the response of a request without a change of its own that is
// kept for replay; a larger one is not kept.
const maxStoredResponse = 4 << 20

// validIdempotencyKey reports whether key is 1 to 255 visible ASCII characters.
func validIdempotencyKey(key string) bool {
	if key == "" || len(key) > 255 {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x21 || key[i] > 0x7e {
			return false
		}
	}
	return true
}

// idempotencyScope is the key's namespace: the caller's credential (or none), the
// On-Behalf-Of user, the method and the path. It is hashed, so no token is stored.
func idempotencyScope(r *http.Request) []byte {
	h := sha256.New()
	for _, part := range []string{r.Header.Get("Authorization"), r.Header.Get("On-Behalf-Of"), r.Method, r.URL.Path} {
		_, _ = io.WriteString(h, part)
		_, _ = h.Write([]byte{'\n'})
	}
	return h.Sum(nil)
}

// storable reports whether a response is kept for replay: a 2xx or a 4xx other than 408,
// 429 and 499 (a retry of those, and of a 5xx, does the work).
func storable(status int) bool {
	return status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests &&
		status != statusClientClosedRequest
}

// idempotency makes a POST with an Idempotency-Key header safe to retry: a retry with the
// same body gets the first response again, with Idempotent-Replayed: true; the same key
// with another body is 409 idempotency_conflict. Keys are scoped by idempotencyScope and
// bound to the body's SHA-256.
//
// The response is buffered. A request whose handler changes something has its key
// claimed inside the change's transaction, which parks before commit
// (postgres.Idempotency); the response is then stored in the key's row and committed with
// the change, and only then sent. So after a crash at any moment a retry either finds
// nothing (the change did not commit either, and the retry does it) or the complete
// response. A request that reached an endpoint without a change of its own (refused, or
// read-only) keeps its response afterwards, in a statement of its own: no change hangs on
// it. A request that did not reach an endpoint (unknown path, failed authentication)
// keeps nothing. A 5xx, 408 or 429 keeps nothing, so that a retry does the work.
//
// A request with a key whose first request still runs waits for it (here, for one in this
// process; in Postgres, on the uncommitted key row, for one in another) and then answers
// as a retry would.
func idempotency(store idempotencyStore, sealer *Sealer, next http.Handler) http.Handler {
	running := newKeyLocks()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys := r.Header.Values("Idempotency-Key")
		if r.Method != http.MethodPost || len(keys) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		key := keys[0]
		if len(keys) > 1 || !validIdempotencyKey(key) {
			writeProblemValue(w, r, validationProblem(FieldError{
				Location: "header.Idempotency-Key",
				Message:  "must be one value of 1 to 255 visible ASCII characters",
			}))
			return
		}

		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeProblemValue(w, r, tooLarge(maxBodyBytes))
				return
			}
			writeProblemValue(w, r, newProblem(http.StatusBadRequest, "malformed_request", "the request body could not be read"))
			return
		}
		if len(body) > maxBodyBytes {
			writeProblemValue(w, r, tooLarge(maxBodyBytes))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))

		ctx := r.Context()
		hash := sha256.Sum256(body)
		k := &postgres.Idempotency{Scope: idempotencyScope(r), Key: key, RequestHash: hash[:]}
		release, waited, err := running.lock(ctx, string(k.Scope)+"\x00"+key)
		if err != nil {
			return // the client went away while waiting
		}
		defer release()
		if waited {
			// A request with this key ran here a moment ago: its answer is likely kept.
			stored, err := store.FindIdempotentResponse(ctx, k)
			if err != nil {
				writeProblem(w, r, err)
				return
			}
			if stored != nil {
				replay(w, r, sealer, k, stored)
				return
			}
		}

		logger := zerolog.Ctx(ctx)
		bg := context.WithoutCancel(ctx) // a change that was made is kept, client or not
		defer k.Rollback(bg)             // a panic, or a parked change of a failed request
		bw := &bufferedWriter{header: http.Header{}}
		next.ServeHTTP(bw, r.WithContext(postgres.WithIdempotency(ctx, k)))
		status := bw.statusOrOK()
		contentType := bw.header.Get("Content-Type")

		switch {
		case k.Replay():
			// The change's transaction found the key taken by a committed request.
			stored, err := store.FindIdempotentResponse(bg, k)
			if err != nil {
				writeProblem(w, r, err)
				return
			}
			if stored == nil {
				writeProblem(w, r, fmt.Errorf("%w: the first response is no longer kept", domain.ErrIdempotencyConflict))
				return
			}
			replay(w, r, sealer, k, stored)
		case k.Parked() && status < 300:
			if err := k.Commit(bg, status, contentType, sealer.seal(bw.body.Bytes())); err != nil {
				writeProblem(w, r, fmt.Errorf("commit idempotent request: %w", err))
				return
			}
			bw.sendTo(w)
		case !k.Armed():
			bw.sendTo(w) // no endpoint: nothing is kept
		default:
			// A handler that failed after its change: the change goes, and the failure
			// is kept (or not) as one that changed nothing.
			k.Rollback(bg)
			var (
				stored *postgres.IdempotentResponse
				err    error
			)
			switch {
			case storable(status) && bw.body.Len() <= maxStoredResponse:
				stored, err = store.SaveIdempotentResponse(bg, k, status, contentType, sealer.seal(bw.body.Bytes()))
			case storable(status):
				logger.Warn().Int("status", status).Msg("response too large to keep for idempotent replay")
			default:
				// A failure keeps nothing, but a request with the key may have
				// committed before (this one was refused for what that one did).
				stored, err = store.FindIdempotentResponse(bg, k)
			}
			if err != nil {
				logger.Error().Err(err).Msg("keep idempotent response")
			}
			if stored != nil {
				replay(w, r, sealer, k, stored)
				return
			}
			bw.sendTo(w)
		}
	})
}

// replay answers with stored, the response of the first request with k's key, or 409
// idempotency_conflict when that request had another body.
func replay(w http.ResponseWriter, r *http.Request, sealer *Sealer, k *postgres.Idempotency, stored *postgres.IdempotentResponse) {
	if !stored.SameRequest(k) {
		writeProblem(w, r, domain.ErrIdempotencyConflict)
		return
	}
	body, err := sealer.open(stored.Body)
	if err != nil {
		// Sealed with a key no longer configured: the first response is lost.
		writeProblem(w, r, fmt.Errorf("%w: the first response can no longer be read", domain.ErrIdempotencyConflict))
		return
	}
	if stored.ContentType != "" {
		w.Header().Set("Content-Type", stored.ContentType)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(stored.Status)
	_, _ = w.Write(body)
}

// keyLocks lets one request per key run at a time in this process; the others wait for
// it and then look for its kept response.
type keyLocks struct {
	mu      sync.Mutex
	running map[string]chan struct{}
}

func newKeyLocks() *keyLocks { return &keyLocks{running: map[string]chan struct{}{}} }

// lock waits until no request with key runs here, and takes key; waited tells whether
// another had it.
func (l *keyLocks) lock(ctx context.Context, key string) (release func(), waited bool, err error) {
	for {
		l.mu.Lock()
		done, busy := l.running[key]
		if !busy {
			done = make(chan struct{})
			l.running[key] = done
			l.mu.Unlock()
			return func() {
				l.mu.Lock()
				delete(l.running, key)
				l.mu.Unlock()
				close(done)
			}, waited, nil
		}
		l.mu.Unlock()
		waited = true
		select {
		case <-done:
		case <-ctx.Done():
			return nil, waited, ctx.Err()
		}
	}
}

// bufferedWriter keeps a whole response (headers, status, body) until sendTo.
type bufferedWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedWriter) Header() http.Header { return w.header }

func (w *bufferedWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
}

func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// Flush does nothing: the response leaves with sendTo.
func (w *bufferedWriter) Flush() {}

func (w *bufferedWriter) statusOrOK() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// sendTo writes the kept response to w.
func (w *bufferedWriter) sendTo(dst http.ResponseWriter) {
	h := dst.Header()
	for k, v := range w.header {
		h[k] = v
	}
	dst.WriteHeader(w.statusOrOK())
	_, _ = dst.Write(w.body.Bytes())
}

// Sealer encrypts the responses kept for replay (AES-256-GCM with keys derived from the
// secret keys): they may hold session tokens (sign-in, activation), which must not rest in
// the database in the clear. The first key seals; any opens, so that replays survive a
// rotation of ORGS_SECRET_KEY. A nil Sealer keeps responses in the clear (tests).
type Sealer struct {
	aeads []cipher.AEAD
}

// NewSealer returns a Sealer of secrets (at least one; the first seals).
func NewSealer(secrets ...string) *Sealer {
	s := &Sealer{}
	for _, secret := range secrets {
		key := sha256.Sum256([]byte("orgs/idempotency/v1\x00" + secret))
		block, err := aes.NewCipher(key[:])
		if err != nil {
			panic(err) // a 32-byte key never fails
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			panic(err)
		}
		s.aeads = append(s.aeads, aead)
	}
	return s
}

// seal encrypts a response with the first key.
func (s *Sealer) seal(body []byte) []byte {
	if s == nil || len(s.aeads) == 0 {
		return body
	}
	aead := s.aeads[0]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(body)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, body, nil)
}

// open decrypts what seal stored, with whichever key sealed it.
func (s *Sealer) open(sealed []byte) ([]byte, error) {
	if s == nil || len(s.aeads) == 0 {
		return sealed, nil
	}
	for _, aead := range s.aeads {
		if len(sealed) < aead.NonceSize() {
			return nil, errors.New("sealed response too short")
		}
		if body, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil); err == nil {
			return body, nil
		}
	}
	return nil, errors.New("no configured key opens the sealed response")
}
