package soak_test

import (
	"testing"
	"time"
)

// TestCommitOrder checks the soak's ordering check on made-up spans: requests answered
// before another was sent must have their events first; overlapping ones may interleave.
func TestCommitOrder(t *testing.T) {
	t.Parallel()
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	sp := func(sent, done, lo, hi int) span {
		return span{sent: at(sent), done: at(done), lo: lo, hi: hi, r: &request{kind: "invite", key: "k"}}
	}
	tests := []struct {
		name  string
		spans []span
		want  int
	}{
		{"in order", []span{sp(0, 10, 0, 1), sp(20, 30, 2, 3), sp(40, 50, 4, 4)}, 0},
		{"overlapping requests in either order", []span{sp(0, 30, 5, 5), sp(10, 20, 4, 4)}, 0},
		{"a later request's event first", []span{sp(0, 10, 3, 3), sp(20, 30, 2, 2)}, 1},
		{"an event of a request interleaved with a later one", []span{sp(0, 10, 1, 4), sp(20, 30, 2, 3)}, 1},
		{"against any earlier request, not only the last", []span{sp(0, 10, 9, 9), sp(15, 18, 1, 1), sp(20, 30, 5, 5)}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := commitOrder(map[string][]span{"org": tt.spans})
			if len(got) != tt.want {
				t.Errorf("got %d violations %q, want %d", len(got), got, tt.want)
			}
		})
	}
}
