// Package scripts holds the tests of the shell scripts that make run and make test use.
package scripts_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPgShOutsideAnUnreachableCheckout runs scripts/pg.sh from a checkout that the user
// running Postgres cannot work in: as root, one inside a mode-700 folder (like root's
// home), which the postgres user cannot enter; as anyone else, a read-only one. The cluster
// must start (in its own folder outside the checkout), answer, and be found again by
// status, stop and remove.
func TestPgShOutsideAnUnreachableCheckout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postgres cluster")
	}
	if bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(bins) == 0 {
		if _, err := exec.LookPath("pg_ctl"); err != nil {
			t.Skip("no PostgreSQL binaries")
		}
	}
	script, err := os.ReadFile("pg.sh")
	if err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(t.TempDir(), "private")
	checkout := filepath.Join(private, "checkout")
	if err := os.MkdirAll(filepath.Join(checkout, "scripts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(checkout, "scripts", "pg.sh"), script, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Getuid() != 0 {
		// Nobody but root gets past a read-only folder.
		if err := os.Chmod(checkout, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(checkout, 0o755) })
	}
	pg := func(arg string) (string, error) {
		cmd := exec.Command(filepath.Join(checkout, "scripts", "pg.sh"), arg)
		cmd.Dir = "/"
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil && arg != "status" {
			t.Logf("pg.sh %s: %v\n%s", arg, err, stderr.String())
		}
		return strings.TrimSpace(string(out)), err
	}
	t.Cleanup(func() { _, _ = pg("remove") })

	url, err := pg("start")
	if err != nil {
		t.Fatalf("pg.sh start: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Errorf("SELECT 1: got %d, %v", one, err)
	}
	_ = conn.Close(ctx)

	dir, err := pg("dir")
	if err != nil || dir == "" || strings.HasPrefix(dir, checkout) {
		t.Errorf("pg.sh dir: got %q, %v; want a folder outside the checkout", dir, err)
	}
	if _, err := pg("status"); err != nil {
		t.Errorf("pg.sh status after start: %v, want running", err)
	}
	if again, err := pg("start"); err != nil || again != url {
		t.Errorf("second pg.sh start: got %q, %v; want the same cluster %q", again, err, url)
	}
	if _, err := pg("stop"); err != nil {
		t.Errorf("pg.sh stop: %v", err)
	}
	if _, err := pg("status"); err == nil {
		t.Errorf("pg.sh status after stop: running, want stopped")
	}
	if _, err := pg("remove"); err != nil {
		t.Errorf("pg.sh remove: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after remove: %s still there (%v)", dir, err)
	}
}
