package httpapi

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestProblemCodesDocumented checks docs/problems.md against problem.go: every code that
// the problem table or the status table can produce has a row, anchored by its code (the
// problems' type URIs point there), with its status; and the page lists no other code.
func TestProblemCodesDocumented(t *testing.T) {
	t.Parallel()
	want := map[string]int{}
	for _, row := range problems {
		want[row.code] = row.status
	}
	for status, code := range statusCodes {
		want[code] = status
	}
	b, err := os.ReadFile("../../docs/problems.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := regexp.MustCompile(`(?m)^\| <a id="([a-z_]+)"></a>`+"`([a-z_]+)`"+` \| (\d{3}) \|`).FindAllStringSubmatch(string(b), -1)
	documented := map[string]int{}
	for _, r := range rows {
		if r[1] != r[2] {
			t.Errorf("docs/problems.md: anchor %q on the row of %q", r[1], r[2])
		}
		status, _ := strconv.Atoi(r[3])
		documented[r[2]] = status
	}
	for code, status := range want {
		got, ok := documented[code]
		switch {
		case !ok:
			t.Errorf("docs/problems.md: no row for %s (%d)", code, status)
		case got != status:
			t.Errorf("docs/problems.md: %s has status %d, want %d", code, got, status)
		}
	}
	for code := range documented {
		if _, ok := want[code]; !ok {
			t.Errorf("docs/problems.md documents %s, which problem.go does not produce", code)
		}
	}
}
