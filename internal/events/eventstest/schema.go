package eventstest

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/orgs-dev/orgs/orgsevents"
)

// schemaBaseURL is the $id prefix of the schemas in orgsevents.Schemas.
const schemaBaseURL = "https://orgs.dev/schemas/events/"

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// compileSchemas compiles every schema in orgsevents.Schemas once; they are constant, so a
// package-level cache is safe.
func compileSchemas() (map[string]*jsonschema.Schema, error) {
	schemasOnce.Do(func() {
		fsys := orgsevents.Schemas()
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		names, err := fs.Glob(fsys, "*.json")
		if err != nil {
			schemasErr = err
			return
		}
		for _, name := range names {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				schemasErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				schemasErr = fmt.Errorf("schema %s: %w", name, err)
				return
			}
			if err := c.AddResource(schemaBaseURL+name, doc); err != nil {
				schemasErr = fmt.Errorf("schema %s: %w", name, err)
				return
			}
		}
		m := make(map[string]*jsonschema.Schema, len(names))
		for _, name := range names {
			sch, err := c.Compile(schemaBaseURL + name)
			if err != nil {
				schemasErr = fmt.Errorf("compile schema %s: %w", name, err)
				return
			}
			m[strings.TrimSuffix(name, ".json")] = sch
		}
		schemas = m
	})
	return schemas, schemasErr
}

// ValidateData checks an event's data against the JSON Schema of its type.
func ValidateData(typ string, data []byte) error {
	m, err := compileSchemas()
	if err != nil {
		return err
	}
	sch, ok := m[typ]
	if !ok || typ == "envelope" || typ == "common" {
		return fmt.Errorf("validate event data: unknown type %q", typ)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("validate %s data: %w", typ, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("validate %s data: %w", typ, err)
	}
	return nil
}

// ValidateEvent checks a whole structured CloudEvent as published (envelope and data).
// End-to-end tests run it on every event they read from the stream.
func ValidateEvent(event []byte) error {
	m, err := compileSchemas()
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(event))
	if err != nil {
		return fmt.Errorf("validate event: %w", err)
	}
	if err := m["envelope"].Validate(v); err != nil {
		return fmt.Errorf("validate event: %w", err)
	}
	ev, err := orgsevents.Parse(event)
	if err != nil {
		return err
	}
	return ValidateData(ev.Type, ev.Data)
}
