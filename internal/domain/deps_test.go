package domain_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies enforces the dependency direction: domain imports only the standard
// library, and no command links test helpers or the NATS server.
func TestDependencies(t *testing.T) {
	t.Parallel()
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, d := range deps("github.com/orgs-dev/orgs/internal/domain") {
		if d != "github.com/orgs-dev/orgs/internal/domain" {
			t.Errorf("internal/domain imports %s; it may import only the standard library", d)
		}
	}
	for _, cmd := range []string{"api", "mailer", "reminder"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/orgs-dev/orgs/cmd/"+cmd).Output()
		if err != nil {
			t.Fatalf("go list -deps cmd/%s: %v", cmd, err)
		}
		for _, d := range strings.Fields(string(out)) {
			if d == "testing" || strings.HasSuffix(d, "test") && strings.Contains(d, "orgs-dev/orgs") ||
				strings.HasPrefix(d, "github.com/nats-io/nats-server") {
				t.Errorf("cmd/%s links %s", cmd, d)
			}
		}
	}
}
