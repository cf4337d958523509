// Package storetest opens fresh, migrated stores for tests: an embedded
// SQLite file per test, and a PostgreSQL schema per test on the server named
// by CLAUDEMESH_TEST_POSTGRES (default: the local trust-auth server).
//
// PostgreSQL is never skipped silently: if it is unreachable the test fails,
// unless CLAUDEMESH_TEST_SKIP_POSTGRES=1 says so explicitly.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema setup

	"github.com/claudemesh/claudemesh-go/models"
)

// DefaultPostgresURL is used when CLAUDEMESH_TEST_POSTGRES is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// Dialects lists the dialects every store test runs on.
var Dialects = []models.Dialect{models.SQLite, models.Postgres}

// PostgresURL is the server tests create their schemas on.
func PostgresURL() string {
	if u := os.Getenv("CLAUDEMESH_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

var (
	adminOnce sync.Once
	adminDB   *sql.DB
	adminErr  error
)

func admin() (*sql.DB, error) {
	adminOnce.Do(func() {
		adminDB, adminErr = sql.Open("pgx", PostgresURL())
		if adminErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			adminErr = adminDB.PingContext(ctx)
		}
	})
	return adminDB, adminErr
}

// Each runs fn as a subtest per dialect, each with its own fresh store.
func Each(t *testing.T, fn func(t *testing.T, s *models.Store)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d))
		})
	}
}

// Open returns a migrated store of the dialect, dropped when the test ends.
func Open(t testing.TB, d models.Dialect) *models.Store {
	t.Helper()
	opt := Options(t, d)
	s, err := models.Open(context.Background(), opt)
	if err != nil {
		t.Fatalf("open %s store: %v", d, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate %s store: %v", d, err)
	}
	return s
}

// Options prepares an empty database of the dialect (a temp SQLite file, or
// a fresh PostgreSQL schema) and returns the options that open it. Several
// stores opened with the same options share the database, as two brokers do.
func Options(t testing.TB, d models.Dialect) models.Options {
	t.Helper()
	if d == models.SQLite {
		return models.Options{SQLitePath: filepath.Join(t.TempDir(), "claudemesh.db")}
	}
	schema := fresh(t, "t_", "CREATE SCHEMA %s", "DROP SCHEMA %s CASCADE")
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatalf("parse CLAUDEMESH_TEST_POSTGRES: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return models.Options{DatabaseURL: u.String(), MaxOpenConns: 10}
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// Database creates an empty PostgreSQL database of its own (not a schema in
// the shared test database), dropped when the test ends, and returns its
// URL. Tests of what several brokers do to one fresh database use it, so
// database-wide state (advisory locks, types) starts clean.
func Database(t testing.TB) string {
	t.Helper()
	name := fresh(t, "d_", "CREATE DATABASE %s", "DROP DATABASE %s WITH (FORCE)")
	u, err := url.Parse(PostgresURL())
	if err != nil {
		t.Fatalf("parse CLAUDEMESH_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// fresh creates a PostgreSQL schema or database named prefix + 16 random
// hex digits with the create statement, drops it with drop when the test
// ends, and returns its name. It skips the test when PostgreSQL is skipped
// knowingly and fails it when PostgreSQL is unreachable.
func fresh(t testing.TB, prefix, create, drop string) string {
	t.Helper()
	if os.Getenv("CLAUDEMESH_TEST_SKIP_POSTGRES") == "1" {
		t.Skip("PostgreSQL skipped: CLAUDEMESH_TEST_SKIP_POSTGRES=1")
	}
	db, err := admin()
	if err != nil {
		t.Fatalf("PostgreSQL at %s is unreachable (%v); start it, point CLAUDEMESH_TEST_POSTGRES at one, or set CLAUDEMESH_TEST_SKIP_POSTGRES=1 to skip it knowingly", redact(PostgresURL()), err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	if _, err := db.Exec(fmt.Sprintf(create, name)); err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(create, name), err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(fmt.Sprintf(drop, name)); err != nil {
			t.Logf("%s: %v", fmt.Sprintf(drop, name), err)
		}
	})
	return name
}
