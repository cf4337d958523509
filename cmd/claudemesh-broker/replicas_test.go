package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/claudemesh/claudemesh-go/migrations"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// replicas is how many brokers start at the same moment on one database.
const replicas = 4

// TestReplicasMigrateTogether starts several brokers at the same moment on
// one database, empty or one migration behind: every one comes up and each
// migration is recorded once. Before the migration lock, two of three
// brokers on an empty PostgreSQL database died with a duplicate key in
// pg_type_typname_nsp_index.
func TestReplicasMigrateTogether(t *testing.T) {
	for _, d := range storetest.Dialects {
		for _, behind := range []bool{false, true} {
			name := string(d) + "/empty"
			if behind {
				name = string(d) + "/one-behind"
			}
			t.Run(name, func(t *testing.T) {
				env := map[string]string{}
				if d == models.Postgres {
					env["DATABASE_URL"] = storetest.Database(t)
				} else {
					env["CLAUDEMESH_SQLITE_PATH"] = filepath.Join(t.TempDir(), "cm.db")
				}
				latest := latestMigration(t, d)
				if behind {
					migrateTo(t, d, env, int64(latest-1))
				}
				errs := make([]error, replicas)
				outs := make([]bytes.Buffer, replicas)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range replicas {
					wg.Go(func() {
						<-start
						var errb bytes.Buffer
						errs[i] = run(context.Background(), []string{"migrate"}, envOf(env), &outs[i], &errb)
					})
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Errorf("broker %d: %v", i, err)
					} else if want := fmt.Sprintf("schema at version %d", latest); !strings.Contains(outs[i].String(), want) {
						t.Errorf("broker %d printed %q", i, outs[i].String())
					}
				}
				assertAppliedOnce(t, d, env, latest)
			})
		}
	}
}

// openRaw opens the test database with database/sql for goose and checks.
func openRaw(t *testing.T, d models.Dialect, env map[string]string) *sql.DB {
	t.Helper()
	s, err := models.Open(context.Background(), models.Options{DatabaseURL: env["DATABASE_URL"], SQLitePath: env["CLAUDEMESH_SQLITE_PATH"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	db, err := s.SQLDB()
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// migrateTo brings the database to version v, as a broker one release older
// left it.
func migrateTo(t *testing.T, d models.Dialect, env map[string]string, v int64) {
	t.Helper()
	fsys, dialect := fs.FS(migrations.SQLite), goose.DialectSQLite3
	fsys, _ = fs.Sub(fsys, "sqlite")
	if d == models.Postgres {
		fsys, _ = fs.Sub(migrations.Postgres, "postgres")
		dialect = goose.DialectPostgres
	}
	p, err := goose.NewProvider(dialect, openRaw(t, d, env), fsys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), v); err != nil {
		t.Fatal(err)
	}
}

// assertAppliedOnce checks goose's ledger: versions 1..latest, each once.
func assertAppliedOnce(t *testing.T, d models.Dialect, env map[string]string, latest int) {
	t.Helper()
	rows, err := openRaw(t, d, env).Query("SELECT version_id, count(*) FROM goose_db_version WHERE version_id > 0 GROUP BY version_id ORDER BY version_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var v, n int64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d×%d", v, n))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	var want []string
	for v := 1; v <= latest; v++ {
		want = append(want, fmt.Sprintf("%d×1", v))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("applied migrations %v, want %v", got, want)
	}
}
