package orgsevents_test

import (
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/orgs-dev/orgs/orgsevents"
)

// TestSchemasCoverTypes keeps the types, their data structs, their schemas and the
// AsyncAPI document in step.
func TestSchemasCoverTypes(t *testing.T) {
	t.Parallel()
	asyncapi, err := os.ReadFile("../docs/asyncapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range orgsevents.Types() {
		if orgsevents.NewData(typ) == nil {
			t.Errorf("%s: no data struct", typ)
		}
		if _, err := fs.Stat(orgsevents.Schemas(), typ+".json"); err != nil {
			t.Errorf("%s: no schema: %v", typ, err)
		}
		if !strings.Contains(string(asyncapi), "address: orgs.events."+typ+"\n") ||
			!strings.Contains(string(asyncapi), "'../orgsevents/schemas/"+typ+".json'") {
			t.Errorf("%s: missing from docs/asyncapi.yaml", typ)
		}
	}
}
