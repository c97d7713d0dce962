package config_test

import (
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/internal/config"
)

// TestConfigurationDocumented checks docs/configuration.md against the flags Load
// defines: every ORGS_ variable has a row there with its flag, and the table of
// variables lists no variable that Load does not read.
func TestConfigurationDocumented(t *testing.T) {
	t.Parallel()
	var help strings.Builder
	if _, err := config.Load([]string{"-h"}, env(nil), "x", &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
	// flag prints "  -name type\n    \thelp (ORGS_NAME) (default ...)" per flag.
	pairs := regexp.MustCompile(`(?m)^  -([a-z-]+)[^\n]*\n\s+[^\n]*\((ORGS_[A-Z0-9_]+)`).FindAllStringSubmatch(help.String(), -1)
	if len(pairs) < 25 {
		t.Fatalf("found %d variables in -h, want every one of config.Load:\n%s", len(pairs), help.String())
	}
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	read := map[string]bool{}
	for _, p := range pairs {
		flagName, variable := p[1], p[2]
		read[variable] = true
		if !strings.Contains(doc, "| `"+variable+"` | `-"+flagName+"` |") {
			t.Errorf("docs/configuration.md: no row for %s with flag -%s", variable, flagName)
		}
	}

	// The table of variables (not the section of those still being added) names only
	// variables that Load reads.
	_, table, ok := strings.Cut(doc, "\n## Variables\n")
	if !ok {
		t.Fatal("docs/configuration.md: no section ## Variables")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	for _, m := range regexp.MustCompile("(?m)^\\| `(ORGS_[A-Z0-9_]+)`").FindAllStringSubmatch(table, -1) {
		if !read[m[1]] {
			t.Errorf("docs/configuration.md documents %s, which config.Load does not read", m[1])
		}
	}
}
