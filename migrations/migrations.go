// Package migrations embeds the SQL migrations of orgs' own schema, applied with goose.
// River's schema is applied separately through rivermigrate (see internal/postgres).
package migrations

import "embed"

// FS holds the goose migrations, named NNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
