package orgsevents

import (
	"embed"
	"io/fs"
)

//go:embed schemas/*.json
var schemaFiles embed.FS

// Schemas returns the JSON Schemas (draft 2020-12) of orgs' events: "<type>.json" for each
// type's data, "envelope.json" for the CloudEvents envelope and "common.json" for the
// shared representations they reference. docs/asyncapi.yaml refers to the same files.
func Schemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "schemas")
	if err != nil {
		// fs.Sub fails only on an invalid path, and "schemas" is a constant.
		panic(err)
	}
	return sub
}
