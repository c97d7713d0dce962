package mail

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves goroutines behind: a Sender that does not
// close its connection, or a test SMTP server that outlives its test.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
