package orgsevents

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// ErrPoison marks a handler error that retrying cannot fix: Subscribe terminates the
// message (JetStream will not redeliver it) instead of retrying. Wrap it:
// fmt.Errorf("%w: unknown plan", orgsevents.ErrPoison).
var ErrPoison = errors.New("poison event")

// Config configures Subscribe. Only Durable is required.
type Config struct {
	// Durable names the JetStream consumer; subscribers that share it share the work, and
	// it remembers the position across restarts.
	Durable string
	// Types filters the event types to receive; empty means all.
	Types []string
	// MaxDeliver is how often a message is delivered before JetStream gives up on it
	// (default 10).
	MaxDeliver int
	// Backoff is the delay before redelivery after the handler's n-th failure (the last
	// one repeats); default 1s, 5s, 30s, 2m.
	Backoff []time.Duration
	// AckWait is how long the server waits for an ack before redelivering (default 30s);
	// handlers must finish within it.
	AckWait time.Duration
	// MaxAckPending bounds the messages delivered but not yet acked (default 1000). Set
	// it to 1 to handle events strictly in stream order, also across retries: otherwise
	// the events after a failed one are handled before its redelivery.
	MaxAckPending int
	// DedupeSize is how many recently handled event ids are remembered to skip
	// redeliveries (default 10000; negative disables).
	DedupeSize int
	// Logger receives failures; the zero value logs nothing.
	Logger zerolog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 10
	}
	if len(c.Backoff) == 0 {
		c.Backoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute}
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DedupeSize == 0 {
		c.DedupeSize = 10000
	}
	return c
}

// Handler handles one event. It returns nil when done (the message is acked), an error
// wrapping ErrPoison to drop it, or any other error to have it redelivered after a backoff.
// Delivery is at least once: handlers must be idempotent.
type Handler func(ctx context.Context, ev Event) error

// Subscribe creates or updates the durable pull consumer cfg.Durable on the ORGS_EVENTS
// stream (explicit acks) and hands each event to handler, one at a time, until ctx is done;
// then it stops the consumer, waits for the running handler, and returns nil. It returns an
// error only if the consumer cannot be created.
//
// Messages that are not valid events are terminated, as are those whose handler returns
// an error wrapping ErrPoison. A message whose event id was handled successfully a short
// while ago (by this process: the memory is an in-process LRU of cfg.DedupeSize ids) is
// acked without calling handler. That de-duplication is best effort: after a restart, or
// when several processes share the durable, the same event can reach handler again, so
// handlers must be idempotent.
func Subscribe(ctx context.Context, js jetstream.JetStream, cfg Config, handler Handler) error {
	cfg = cfg.withDefaults()
	if cfg.Durable == "" {
		return errors.New("subscribe to events: durable name required")
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
	}
	for _, t := range cfg.Types {
		cc.FilterSubjects = append(cc.FilterSubjects, Subject(t))
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamName, cc)
	if err != nil {
		return fmt.Errorf("subscribe to events: consumer %s: %w", cfg.Durable, err)
	}
	s := &subscriber{cfg: cfg, handler: handler, ctx: ctx, seen: newIDSet(cfg.DedupeSize)}
	consume, err := cons.Consume(s.handle,
		// A small buffer: on stop, buffered messages wait for AckWait before another
		// subscriber gets them.
		jetstream.PullMaxMessages(64),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			cfg.Logger.Warn().Err(err).Str("durable", cfg.Durable).Msg("consume events")
		}))
	if err != nil {
		return fmt.Errorf("subscribe to events: consume %s: %w", cfg.Durable, err)
	}
	<-ctx.Done()
	consume.Stop()
	<-consume.Closed()
	return nil
}

type subscriber struct {
	cfg     Config
	handler Handler
	ctx     context.Context
	seen    *idSet
}

func (s *subscriber) handle(msg jetstream.Msg) {
	log := s.cfg.Logger.With().Str("durable", s.cfg.Durable).Str("subject", msg.Subject()).Logger()
	ev, err := Parse(msg.Data())
	if err != nil {
		log.Error().Err(err).Msg("terminate undecodable event")
		_ = msg.TermWithReason("undecodable event")
		return
	}
	log = log.With().Str("event_id", ev.ID).Int64("seq", ev.Seq).Logger()
	if s.seen.contains(ev.ID) {
		if err := msg.Ack(); err != nil {
			log.Warn().Err(err).Msg("ack duplicate event")
		}
		return
	}
	if s.ctx.Err() != nil {
		// Stopping: leave it for redelivery rather than run a handler with a dead ctx.
		_ = msg.Nak()
		return
	}
	err = s.handler(s.ctx, ev)
	switch {
	case err == nil:
		s.seen.add(ev.ID)
		if err := msg.Ack(); err != nil {
			log.Warn().Err(err).Msg("ack event")
		}
	case errors.Is(err, ErrPoison):
		log.Error().Err(err).Msg("terminate poison event")
		_ = msg.TermWithReason(truncate(err.Error(), 200))
	default:
		var n uint64 = 1
		if meta, merr := msg.Metadata(); merr == nil {
			n = meta.NumDelivered
		}
		if n >= uint64(s.cfg.MaxDeliver) {
			log.Error().Err(err).Uint64("deliveries", n).Msg("handle event: giving up")
			_ = msg.TermWithReason("max deliveries reached")
			return
		}
		delay := s.cfg.Backoff[min(int(n)-1, len(s.cfg.Backoff)-1)]
		log.Warn().Err(err).Uint64("deliveries", n).Dur("retry_in", delay).Msg("handle event")
		if err := msg.NakWithDelay(delay); err != nil {
			log.Warn().Err(err).Msg("nak event")
		}
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// idSet is a bounded LRU set of event ids.
type idSet struct {
	mu    sync.Mutex
	max   int
	order *list.List
	ids   map[string]*list.Element
}

func newIDSet(max int) *idSet {
	return &idSet{max: max, order: list.New(), ids: make(map[string]*list.Element)}
}

func (s *idSet) contains(id string) bool {
	if s.max <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.ids[id]
	if ok {
		s.order.MoveToFront(e)
	}
	return ok
}

func (s *idSet) add(id string) {
	if s.max <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.ids[id]; ok {
		s.order.MoveToFront(e)
		return
	}
	s.ids[id] = s.order.PushFront(id)
	if s.order.Len() > s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.ids, last.Value.(string))
	}
}
