// Package models holds the GORM models and the store: every query and every
// transaction of the broker lives here, for both PostgreSQL and SQLite.
package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database behind a Store.
type Dialect string

// The two supported dialects.
const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// Store is the broker's only door to the database.
type Store struct {
	db      *gorm.DB
	sqlDB   *sql.DB // the pool under db, for pgx pipelines (commitPipelined)
	dialect Dialect
	now     func() time.Time
	// lastUsed throttles api_keys.last_used_at writes to one a minute per key.
	lastUsed *usageThrottle
	// hooks lets tests inject a failure between the steps of a transaction.
	hooks Hooks
	// commits batches concurrent message posts per mesh (group commit).
	commits *batcher[*postReq]
	// directs batches concurrent direct sends, claims and acks per mesh
	// (dmcommit.go).
	directs *batcher[*directReq]
	// keyLookups batches concurrent API-key lookups into one query.
	keyLookups *batcher[*keyLookup]
	// streamReads batches the periodic stream re-checks into one statement.
	streamReads *batcher[*streamRead]
	// onCommit receives committed messages in seq order (the stream hub).
	onCommit        func(Committed)
	maxMessageBytes int
	// sqlitePath is the embedded database file ("" on PostgreSQL).
	sqlitePath string
	// processLock is <sqlitePath>.lock, held while the store is open when
	// Options.ExclusiveSQLite asked for it; nil otherwise.
	processLock *fileLock
}

// Hooks are test seams: a non-nil function is called at a named step inside
// a transaction and, if it returns an error, the transaction rolls back.
type Hooks struct {
	AfterStep func(step string) error
}

// Options configure Open.
type Options struct {
	// DatabaseURL selects PostgreSQL when set ("postgres://…").
	DatabaseURL string
	// SQLitePath is the embedded database file used when DatabaseURL is empty.
	SQLitePath string
	// Now overrides the clock (tests). Times are always stored in UTC.
	Now func() time.Time
	// MaxOpenConns bounds the PostgreSQL pool (0 = 20).
	MaxOpenConns int
	// MaxMessageBytes bounds a decoded ciphertext (0 = DefaultMaxMessageBytes).
	MaxMessageBytes int
	// ExclusiveSQLite makes the store hold <SQLitePath>.lock for its whole
	// life (a serving broker): a second process that asks for it waits up
	// to LockWait, then is refused. Ignored on PostgreSQL.
	ExclusiveSQLite bool
	// LockWait bounds the wait for the SQLite process lock (0 = 15 s, long
	// enough for a stopping broker to drain). The wait for another
	// replica's migration is fixed (5 min).
	LockWait time.Duration
}

// Open connects to PostgreSQL (DatabaseURL set) or opens the embedded SQLite
// file in WAL mode. It does not migrate; call Migrate.
func Open(ctx context.Context, opt Options) (*Store, error) {
	var (
		dial       gorm.Dialector
		dialect    Dialect
		sqlitePath string
		procLock   *fileLock
	)
	switch {
	case opt.DatabaseURL != "":
		if !strings.HasPrefix(opt.DatabaseURL, "postgres://") && !strings.HasPrefix(opt.DatabaseURL, "postgresql://") {
			return nil, fmt.Errorf("DATABASE_URL must start with postgres:// or postgresql://")
		}
		dial, dialect = postgres.Open(opt.DatabaseURL), Postgres
	default:
		path := opt.SQLitePath
		if path == "" {
			path = "claudemesh.db"
		}
		if opt.ExclusiveSQLite {
			// Before the file is opened: a second broker on the same file
			// is refused here, not half-way through its first write.
			var err error
			if procLock, err = lockProcess(ctx, path, orDuration(opt.LockWait, 15*time.Second)); err != nil {
				return nil, err
			}
		}
		// busy_timeout comes first so that the switch to WAL, which needs
		// the file to itself, waits for another process instead of failing
		// with SQLITE_BUSY. _txlock=immediate takes the write lock at BEGIN,
		// so two writers queue on busy_timeout instead of failing on upgrade.
		dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		dial, dialect, sqlitePath = sqlite.Open(dsn), SQLite, path
	}
	db, err := openGorm(ctx, dial, dialect)
	if err != nil {
		procLock.release()
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		procLock.release()
		return nil, fmt.Errorf("database handle: %w", err)
	}
	if dialect == SQLite {
		// One writer at a time is SQLite's model; a single connection also
		// makes every transaction strictly serial, which the seq allocator needs.
		sqlDB.SetMaxOpenConns(1)
	} else {
		n := opt.MaxOpenConns
		if n == 0 {
			n = 20
		}
		sqlDB.SetMaxOpenConns(n)
		sqlDB.SetMaxIdleConns(n)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		procLock.release()
		return nil, fmt.Errorf("reach %s database: %w", dialect, err)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	maxBytes := opt.MaxMessageBytes
	if maxBytes == 0 {
		maxBytes = DefaultMaxMessageBytes
	}
	s := &Store{db: db, sqlDB: sqlDB, dialect: dialect, now: now, lastUsed: newUsageThrottle(), maxMessageBytes: maxBytes,
		sqlitePath: sqlitePath, processLock: procLock}
	s.commits = newBatcher(maxBatch, s.commitBatch)
	s.directs = newBatcher(maxBatch, s.commitDirect)
	s.keyLookups = newBatcher(maxKeyLookups, func(_ string, b []*keyLookup) { s.lookupKeys(b) })
	s.streamReads = newBatcher(maxStreamReads, func(_ string, b []*streamRead) { s.readStreamStates(b) })
	s.streamReads.linger = streamReadLinger
	return s, nil
}

// openGorm opens the database. Several processes opening one fresh SQLite
// file at once (replicas of `migrate`) can meet SQLITE_BUSY while one of
// them switches the file to WAL, a step SQLite does not always hand to the
// busy handler; such an open is retried until ctx ends or 15 s pass.
func openGorm(ctx context.Context, dial gorm.Dialector, dialect Dialect) (*gorm.DB, error) {
	cfg := &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         false,
	}
	deadline := time.Now().Add(15 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		db, err := gorm.Open(dial, cfg)
		if err == nil || dialect != SQLite || !sqliteBusy(err) || time.Now().After(deadline) {
			return db, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// sqliteBusy reports SQLite's SQLITE_BUSY (any extended code).
func sqliteBusy(err error) bool {
	var ce interface{ Code() int }
	return errors.As(err, &ce) && ce.Code()&0xff == 5
}

// Dialect reports which database the store talks to.
func (s *Store) Dialect() Dialect { return s.dialect }

// SetHooks installs test hooks. Not safe to call concurrently with requests.
func (s *Store) SetHooks(h Hooks) { s.hooks = h }

// OnCommit registers the function that receives every committed batch of
// messages, in seq order, before the posters are answered. Set it once,
// before serving.
func (s *Store) OnCommit(fn func(Committed)) { s.onCommit = fn }

// Close waits for queued posts to commit, then releases the connection pool.
func (s *Store) Close() error {
	s.commits.wait()
	s.directs.wait()
	s.keyLookups.wait()
	s.streamReads.wait()
	defer s.processLock.release() // after the last write of this process
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	sqlDB, err := s.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

// SQLDB exposes the pool for tools that need plain database/sql (tests, pgbench-like benchmarks).
func (s *Store) SQLDB() (*sql.DB, error) { return s.db.DB() }

// nowUTC is the store's clock, in UTC at microsecond precision so that a
// time read back from PostgreSQL equals the one written.
func (s *Store) nowUTC() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// tx runs fn in one transaction.
func (s *Store) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}

// step calls the test hook for a named step, if any.
func (s *Store) step(name string) error {
	if s.hooks.AfterStep == nil {
		return nil
	}
	if err := s.hooks.AfterStep(name); err != nil {
		return fmt.Errorf("step %s: %w", name, err)
	}
	return nil
}

// forUpdate adds a row lock on PostgreSQL; SQLite's single writer already
// serialises the transaction.
func (s *Store) forUpdate(q *gorm.DB) *gorm.DB {
	if s.dialect == Postgres {
		return q.Clauses(lockingUpdate)
	}
	return q
}

// isUniqueViolation reports a unique-index conflict in either dialect.
func isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 23505") || strings.Contains(msg, "UNIQUE constraint failed")
}

// uniqueIndexOf names the index behind a unique violation, when the driver says.
func uniqueIndexOf(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "unique constraint \""); i >= 0 {
		rest := msg[i+len("unique constraint \""):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return rest[:j]
		}
	}
	if i := strings.Index(msg, "UNIQUE constraint failed: "); i >= 0 {
		return msg[i+len("UNIQUE constraint failed: "):]
	}
	return ""
}

// orDuration is d, or def when d is zero.
func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
