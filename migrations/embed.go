// Package migrations holds the versioned SQL schema, one folder per dialect,
// embedded into the binary and applied with goose.
package migrations

import "embed"

// Postgres holds the PostgreSQL migrations under postgres/.
//
//go:embed postgres/*.sql
var Postgres embed.FS

// SQLite holds the embedded-SQLite migrations under sqlite/.
//
//go:embed sqlite/*.sql
var SQLite embed.FS
