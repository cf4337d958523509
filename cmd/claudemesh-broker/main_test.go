package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/migrations"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// latestMigration is the highest goose version embedded for the dialect, so
// adding a migration does not mean editing this test.
func latestMigration(t *testing.T, d models.Dialect) int {
	t.Helper()
	fsys, dir := migrations.SQLite, "sqlite"
	if d == models.Postgres {
		fsys, dir = migrations.Postgres, "postgres"
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	latest := 0
	for _, e := range entries {
		v, _, _ := strings.Cut(e.Name(), "_")
		if n, err := strconv.Atoi(v); err == nil && n > latest {
			latest = n
		}
	}
	return latest
}

func envOf(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestBadConfigNamesTheVariable(t *testing.T) {
	cases := map[string]string{
		"BROKER_PORT":         "70000",
		"STATUS_TTL_SECONDS":  "soon",
		"DATABASE_URL":        "mysql://x",
		"JWT_SECRET":          "short",
		"LOG_LEVEL":           "loud",
		"NATS_URL":            "http://nats",
		"CORS_ORIGINS":        "example.com",
		"MAX_MESSAGE_BYTES":   "-1",
		"QUEUE_TTL_SECONDS":   "5",
		"WS_MAX_FRAME_BYTES":  "10",
		"WS_SENDS_PER_SECOND": "fast",
		"WS_SEND_BURST":       "0",
		"WS_MAX_QUEUED_BYTES": "1",
		"BROKER_ADDR":         "7900",
		"BROKER_ADDR ":        "127.0.0.1:http",
		"BROKER_ADDR  ":       "[::1]:70000",
		"BROKER_ADDR   ":      "bad host:7900",
	}
	for key, val := range cases {
		name := strings.TrimSpace(key) // the same variable, several bad values
		t.Run(key, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), []string{"migrate"}, envOf(map[string]string{name: val}), &out, &errb)
			if err == nil {
				t.Fatalf("%s=%q accepted", name, val)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "bad configuration: "+name+":") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line naming %s", msg, name)
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, envOf(nil), &out, &errb); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Errorf("err = %v", err)
	}
	if err := run(context.Background(), []string{"version"}, envOf(nil), &out, &errb); err != nil || !strings.HasPrefix(out.String(), "claudemesh-broker ") {
		t.Errorf("version: %v %q", err, out.String())
	}
}

// TestMigrateAndBackfillCommands runs the subcommands on both databases and
// checks the backfill output and its idempotence.
func TestMigrateAndBackfillCommands(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			opt := storetest.Options(t, d)
			env := map[string]string{"DATABASE_URL": opt.DatabaseURL, "CLAUDEMESH_SQLITE_PATH": opt.SQLitePath}
			if d == models.SQLite {
				env["CLAUDEMESH_SQLITE_PATH"] = filepath.Join(t.TempDir(), "cm.db")
			}
			ctx := context.Background()
			var out, errb bytes.Buffer
			if err := run(ctx, []string{"migrate"}, envOf(env), &out, &errb); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("schema at version %d", latestMigration(t, d)); !strings.Contains(out.String(), want) {
				t.Errorf("migrate printed %q, want %q", out.String(), want)
			}
			// A legacy mesh whose owner has no member row.
			opt2 := models.Options{DatabaseURL: env["DATABASE_URL"], SQLitePath: env["CLAUDEMESH_SQLITE_PATH"]}
			s, err := models.Open(ctx, opt2)
			if err != nil {
				t.Fatal(err)
			}
			u, _, err := s.Signup(ctx, models.SignupInput{Email: "o@example.com", Password: "long enough pw", Name: "Owner"})
			if err != nil {
				t.Fatal(err)
			}
			db, _ := s.SQLDB()
			if _, err := db.Exec("INSERT INTO meshes (id, slug, name, owner_user_id, created_at) VALUES ($1, 'old', 'Old', $2, CURRENT_TIMESTAMP)", models.NewID(), u.ID); err != nil {
				t.Fatal(err)
			}
			s.Close()

			out.Reset()
			if err := run(ctx, []string{"backfill-owner-members", "--dry-run"}, envOf(env), &out, &errb); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "would create 1 owner member(s)") {
				t.Errorf("dry run printed %q", out.String())
			}
			out.Reset()
			if err := run(ctx, []string{"backfill-owner-members"}, envOf(env), &out, &errb); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "created 1 owner member(s)") || !strings.Contains(out.String(), "(old)") {
				t.Errorf("backfill printed %q", out.String())
			}
			out.Reset()
			if err := run(ctx, []string{"backfill-owner-members"}, envOf(env), &out, &errb); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "created 0 owner member(s)") {
				t.Errorf("second backfill printed %q", out.String())
			}
		})
	}
}

func TestMain(m *testing.M) {
	// The default SQLite path is relative; keep stray files out of the tree.
	dir, err := os.MkdirTemp("", "claudemesh-cmd")
	if err != nil {
		panic(err)
	}
	_ = os.Chdir(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// TestServeWithNoConfiguration starts the broker the way the README does
// (embedded SQLite, defaults) on a free port, probes it, and stops it.
func TestServeWithNoConfiguration(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errb syncBuffer
	go func() {
		done <- run(ctx, nil, envOf(map[string]string{"BROKER_PORT": strconv.Itoa(port), "CLAUDEMESH_SQLITE_PATH": filepath.Join(dir, "claudemesh.db")}), &out, &errb)
	}()
	url := fmt.Sprintf("http://127.0.0.1:%d/ready", port)
	var resp *http.Response
	for range 200 {
		resp, err = http.Get(url)
		if err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v; log: %s", err, errb.String())
		case <-time.After(25 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("broker never answered: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ready = %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v after shutdown", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "claudemesh.db")); err != nil {
		t.Errorf("embedded database not created: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAuditVerifyCommand: a clean chain verifies; editing a row in one mesh
// and deleting a row in another both fail the command, which names each
// mesh's first broken row.
func TestAuditVerifyCommand(t *testing.T) {
	for _, d := range storetest.Dialects {
		t.Run(string(d), func(t *testing.T) {
			opt := storetest.Options(t, d)
			env := map[string]string{"DATABASE_URL": opt.DatabaseURL, "CLAUDEMESH_SQLITE_PATH": opt.SQLitePath}
			ctx := context.Background()
			s, err := models.Open(ctx, opt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			u, _, err := s.Signup(ctx, models.SignupInput{Email: "audit@example.com", Password: "long enough pw", Name: "Auditor"})
			if err != nil {
				t.Fatal(err)
			}
			var meshes []*models.CreatedMesh
			for _, name := range []string{"Edited", "Deleted"} {
				cm, err := s.CreateMyMesh(ctx, u, models.CreateMeshInput{Name: name})
				if err != nil {
					t.Fatal(err)
				}
				for range 3 {
					if _, _, err := s.CreateInvite(ctx, models.RolePrincipal(&cm.Member), &cm.Member, models.CreateInviteInput{}); err != nil {
						t.Fatal(err)
					}
				}
				meshes = append(meshes, cm)
			}
			db, _ := s.SQLDB()
			defer s.Close()

			var out, errb bytes.Buffer
			if err := run(ctx, []string{"audit", "verify"}, envOf(env), &out, &errb); err != nil {
				t.Fatalf("clean chain: %v\n%s", err, out.String())
			}
			if !strings.Contains(out.String(), "audit chain intact: 8 events checked") {
				t.Errorf("clean output %q", out.String())
			}
			if _, err := db.Exec(`UPDATE audit_events SET metadata = '{"prefix":"forged"}' WHERE mesh_id = $1 AND seq = 2`, meshes[0].Mesh.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`DELETE FROM audit_events WHERE mesh_id = $1 AND seq = 3`, meshes[1].Mesh.ID); err != nil {
				t.Fatal(err)
			}
			out.Reset()
			err = run(ctx, []string{"audit", "verify"}, envOf(env), &out, &errb)
			if err == nil || !strings.Contains(err.Error(), "broken in 2 mesh(es)") {
				t.Fatalf("tampered chain: err = %v", err)
			}
			for _, want := range []string{"mesh " + meshes[0].Mesh.ID + ": audit chain broken at seq 2: hash does not match the row",
				"mesh " + meshes[1].Mesh.ID + ": audit chain broken at seq 3: event missing"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output %q lacks %q", out.String(), want)
				}
			}
			if err := run(ctx, []string{"audit"}, envOf(env), &out, &errb); err == nil {
				t.Error("audit without verify accepted")
			}
		})
	}
}
