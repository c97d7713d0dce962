package jobs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// TestKindsListsEveryJobArgs keeps kinds whole: every type of this package with a Kind
// method is in it, so that every client knows every kind.
func TestKindsListsEveryJobArgs(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || fn.Name.Name != "Kind" {
				continue
			}
			if id, ok := fn.Recv.List[0].Type.(*ast.Ident); ok {
				declared = append(declared, id.Name)
			}
		}
	}
	var listed []string
	for _, k := range kinds {
		listed = append(listed, k.args)
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Fatalf("job args types: declared %v, listed in kinds %v", declared, listed)
	}
}

// TestStandInRetriesAsTheRealWorker: the rescuer computes a rescued job's timeout and next
// retry from whichever worker its client has, so a stand-in must answer as the real one.
func TestStandInRetriesAsTheRealWorker(t *testing.T) {
	t.Parallel()
	n := 0
	samePolicy(t, &n, &invitationWorker{})
	samePolicy(t, &n, &activationWorker{})
	samePolicy(t, &n, &reminderWorker{})
	samePolicy(t, &n, &notificationWorker{})
	samePolicy(t, &n, &scheduledReminderWorker{})
	samePolicy(t, &n, &expireWorker{})
	if n != len(kinds) {
		t.Fatalf("compared %d workers, want one per kind (%d)", n, len(kinds))
	}
}

func samePolicy[T river.JobArgs](t *testing.T, n *int, real river.Worker[T]) {
	t.Helper()
	*n++
	standIn := &standInWorker[T]{}
	for attempt := 1; attempt <= 12; attempt++ {
		job := &river.Job[T]{JobRow: &rivertype.JobRow{Attempt: attempt, MaxAttempts: 12}}
		if got, want := standIn.Timeout(job), real.Timeout(job); got != want {
			t.Errorf("%T: stand-in timeout %s, want %s", real, got, want)
		}
		if got, want := standIn.NextRetry(job), real.NextRetry(job); !got.Equal(want) {
			t.Errorf("%T: stand-in next retry %s, want %s", real, got, want)
		}
	}
}

func TestAddStandIns(t *testing.T) {
	t.Parallel()
	mailWorkers := func() *river.Workers {
		w := river.NewWorkers()
		(&Mailer{}).AddWorkers(w)
		return w
	}
	tests := []struct {
		name    string
		workers *river.Workers
		queues  []string
		wantErr string
	}{
		{"own kinds real, others stand in", mailWorkers(), []string{QueueMail}, ""},
		{"an own kind without worker", river.NewWorkers(), []string{QueueMail}, "job kind send_invitation of queue mail has no worker"},
		{"a worker for another queue's kind", mailWorkers(), []string{QueueReminder}, "job kind send_invitation belongs to queue mail"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := addStandIns(tt.workers, tt.queues, nil)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}
