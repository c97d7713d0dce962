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

	"github.com/rs/zerolog"

	"github.com/orgs-dev/orgs/internal/domain"
)

// idempotencyStore keeps Idempotency-Key claims and their responses; postgres.Store
// implements it.
type idempotencyStore interface {
	// ClaimIdempotencyKey returns status 0 when the caller owns the key now, or the stored
	// response of the same request to replay. Returns domain.ErrIdempotencyConflict for
	// another request hash, domain.ErrIdempotencyInFlight while the first one runs.
	ClaimIdempotencyKey(ctx context.Context, scope []byte, key string, requestHash []byte) (status int, contentType string, body []byte, err error)
	CompleteIdempotencyKey(ctx context.Context, scope []byte, key string, status int, contentType string, body []byte) error
	ReleaseIdempotencyKey(ctx context.Context, scope []byte, key string) error
}

// maxStoredResponse bounds the response kept for replay; a larger one releases the key.
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

// idempotency makes a POST with an Idempotency-Key header safe to retry. The first
// request with a key claims it (scoped by idempotencyScope, bound to the body's
// SHA-256), runs, and stores its response if it is a 2xx or 4xx other than 408 and 429;
// a retry with the same body gets that response again, with Idempotent-Replayed: true,
// and the same key with another body is 409 idempotency_conflict, as is a retry while
// the first request still runs. A 5xx, 408, 429 or panic releases the key so that a
// retry does the work.
//
// The crash window: if the process dies after the handler's transaction committed and
// before the response was stored, the key stays claimed; after IdempotencyTakeover (60 s)
// a retry takes it over and runs the request again. The contract's conflict answers
// make that second run safe (it gets already_member, slug_taken and the like rather than
// doing the work twice), though its response may differ from the lost first one.
func idempotency(store idempotencyStore, aead cipher.AEAD, next http.Handler) http.Handler {
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
		scope := idempotencyScope(r)
		hash := sha256.Sum256(body)
		status, contentType, stored, err := store.ClaimIdempotencyKey(ctx, scope, key, hash[:])
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		if status != 0 {
			if stored, err = open(aead, stored); err != nil {
				// Sealed with a key no longer configured: the first response is lost.
				writeProblem(w, r, fmt.Errorf("%w: the first response can no longer be read", domain.ErrIdempotencyConflict))
				return
			}
			if contentType != "" {
				w.Header().Set("Content-Type", contentType)
			}
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(status)
			_, _ = w.Write(stored)
			return
		}

		logger := zerolog.Ctx(ctx)
		bg := context.WithoutCancel(ctx)
		release := func() {
			if err := store.ReleaseIdempotencyKey(bg, scope, key); err != nil {
				logger.Error().Err(err).Msg("release idempotency key")
			}
		}
		cw := &captureWriter{ResponseWriter: w}
		finished := false
		defer func() {
			if !finished { // the handler panicked
				release()
			}
		}()
		next.ServeHTTP(cw, r)
		finished = true

		status = cw.status
		if status == 0 {
			status = http.StatusOK
		}
		switch {
		case status >= 500, status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
			release()
		case cw.overflow:
			logger.Warn().Int("status", status).Msg("response too large to keep for idempotent replay")
			release()
		default:
			err := store.CompleteIdempotencyKey(bg, scope, key, status, cw.Header().Get("Content-Type"), seal(aead, cw.body.Bytes()))
			if err != nil {
				// The key stays claimed; a retry gets 409 until it may take it over.
				logger.Error().Err(err).Msg("complete idempotency key")
			}
		}
	})
}

// captureWriter passes a response through and keeps a copy of its status and body.
type captureWriter struct {
	http.ResponseWriter
	status   int
	body     bytes.Buffer
	overflow bool
}

func (w *captureWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *captureWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.overflow {
		if w.body.Len()+len(b) > maxStoredResponse {
			w.overflow = true
			w.body = bytes.Buffer{}
		} else {
			w.body.Write(b)
		}
	}
	return w.ResponseWriter.Write(b)
}

func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// NewSealer returns the AEAD that encrypts stored responses (AES-256-GCM with a key
// derived from secret): they may hold session tokens (sign-in, activation), which must
// not rest in the database in the clear.
func NewSealer(secret string) cipher.AEAD {
	key := sha256.Sum256([]byte("orgs/idempotency/v1\x00" + secret))
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err) // a 32-byte key never fails
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// seal encrypts a stored response; a nil aead stores it as is (tests).
func seal(aead cipher.AEAD, body []byte) []byte {
	if aead == nil {
		return body
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(body)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, body, nil)
}

// open decrypts what seal stored.
func open(aead cipher.AEAD, sealed []byte) ([]byte, error) {
	if aead == nil {
		return sealed, nil
	}
	if len(sealed) < aead.NonceSize() {
		return nil, errors.New("sealed response too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], nil)
}
