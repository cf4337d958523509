package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/claudemesh/claudemesh-go/migrations"
)

// Migrate applies every pending migration of the store's dialect and returns
// the resulting schema version.
//
// Several brokers may start at once on one database (replicas, a rolling
// deploy): one migrates while the others wait for it, then find nothing
// left to do. On PostgreSQL the wait is a session advisory lock; on SQLite
// it is <path>.lock. A schema that is already current takes no lock, so
// replicas restarting on an up-to-date database never queue.
func (s *Store) Migrate(ctx context.Context) (int64, error) {
	fsys, dialect := s.migrationSource()
	latest, err := latestVersion(fsys)
	if err != nil {
		return 0, err
	}
	if v, err := s.schemaVersion(ctx); err == nil && v >= latest {
		return v, nil
	}
	opts := []goose.ProviderOption{}
	if s.dialect == Postgres {
		opts = append(opts, goose.WithSessionLocker(&advisoryLocker{wait: migrateLockWait}))
	}
	p, err := goose.NewProvider(dialect, s.sqlDB, fsys, opts...)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	if s.dialect == SQLite && s.processLock == nil {
		// A serving broker already holds the file lock for its lifetime;
		// anyone else (the migrate command) takes it for the migration.
		l, err := lockMigration(ctx, s.sqlitePath, migrateLockWait)
		if err != nil {
			return 0, err
		}
		defer l.release()
	}
	// Only the wait for the lock is bounded: a migration cut short by a
	// deadline would leave the replica dead and the next one starting over.
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("apply migrations: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func (s *Store) migrationSource() (fs.FS, goose.Dialect) {
	if s.dialect == Postgres {
		sub, _ := fs.Sub(migrations.Postgres, "postgres")
		return sub, goose.DialectPostgres
	}
	sub, _ := fs.Sub(migrations.SQLite, "sqlite")
	return sub, goose.DialectSQLite3
}

// latestVersion is the highest migration embedded in fsys.
func latestVersion(fsys fs.FS) (int64, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var latest int64
	for _, e := range entries {
		head, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(head, 10, 64); err == nil && v > latest {
			latest = v
		}
	}
	return latest, nil
}

// schemaVersion reads goose's ledger without creating it (goose's own
// GetDBVersion creates the table, which is itself a race between replicas).
// An error means "unknown": the caller migrates under the lock.
func (s *Store) schemaVersion(ctx context.Context) (int64, error) {
	var v sql.NullInt64
	err := s.sqlDB.QueryRowContext(ctx, "SELECT max(version_id) FROM goose_db_version WHERE is_applied").Scan(&v)
	if err != nil {
		return 0, err
	}
	if !v.Valid {
		return 0, errors.New("no migration recorded")
	}
	return v.Int64, nil
}

// migrateLockWait bounds the wait for another replica's migration.
const migrateLockWait = 5 * time.Minute

// advisoryLocker serialises migrations on PostgreSQL with a session advisory
// lock. goose's own locker polls every 5 s; this one blocks in
// pg_advisory_lock, so a waiting replica goes on the moment the migrating
// one is done, and the wait ends with ctx. The key is derived from the
// schema, so brokers sharing a schema share the lock while unrelated
// schemas of one database (tests, two deployments) do not wait for each
// other. A replica that dies while migrating loses its session, and with
// it the lock; its transaction rolls back.
type advisoryLocker struct{ wait time.Duration }

const advisoryKey = "hashtextextended('claudemesh migrate ' || current_schema(), 0)"

func (l advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, l.wait)
	defer cancel()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock("+advisoryKey+")"); err != nil {
		return fmt.Errorf("wait for the migration lock (another broker is migrating): %w", err)
	}
	return nil
}

func (advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock("+advisoryKey+")").Scan(&ok); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	if !ok {
		return errors.New("release the migration lock: it was not held")
	}
	return nil
}
