package api_test

// Benchmarks of POST /v1/messages on PostgreSQL, beside pgbench inserting
// single rows at the same concurrency on the same server, so the figures in
// docs/BENCHMARKS.md compare like with like:
//
//	go test ./api/ -run '^$' -bench 'PostMessage|Pgbench' -benchtime 4000x
//
// Concurrency is CLAUDEMESH_BENCH_CONCURRENCY (default 16).

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

func benchConcurrency() int {
	if n, err := strconv.Atoi(os.Getenv("CLAUDEMESH_BENCH_CONCURRENCY")); err == nil && n > 0 {
		return n
	}
	return 16
}

// parallelism sets b.RunParallel to exactly c goroutines when possible.
func parallelism(b *testing.B, c int) {
	p := c / runtime.GOMAXPROCS(0)
	if p < 1 {
		p = 1
	}
	b.SetParallelism(p)
}

func BenchmarkPostMessage(b *testing.B) {
	e := newEnv(b, models.Postgres, nil)
	c := benchConcurrency()
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Bench")
	inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 1000})
	keys := make([]string, c)
	for i := range keys {
		keys[i] = e.join(inv, fmt.Sprintf("peer-%d", i)).APIKey.Key
	}
	body := func(i int64) []byte {
		raw, _ := json.Marshal(map[string]any{"topic": "general", "bodyVersion": 2,
			"ciphertext": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 256)),
			"nonce":      base64.StdEncoding.EncodeToString(make([]byte, 24))})
		return raw
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c * 2, MaxConnsPerHost: c * 2}}
	var next, worker atomic.Int64
	parallelism(b, c)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		key := keys[int(worker.Add(1)-1)%len(keys)]
		for pb.Next() {
			req, _ := http.NewRequest("POST", e.base+"/v1/messages", bytes.NewReader(body(next.Add(1))))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	b.ReportMetric(float64(c), "clients")
}

// pgbenchScripts are the baselines: a bare single-row insert, and the naive
// "lock the mesh row, take a seq, insert" transaction per message that a
// broker without group commit would run.
var pgbenchScripts = map[string]string{
	"insert": `INSERT INTO bench_messages (id, mesh_id, seq, ciphertext) VALUES (md5(random()::text), 'm', :client_id, repeat('x', 344));`,
	"seq-per-tx": `BEGIN;
UPDATE bench_meshes SET last_seq = last_seq + 1 WHERE id = 'm';
INSERT INTO bench_messages (id, mesh_id, seq, ciphertext) VALUES (md5(random()::text), 'm', :client_id, repeat('x', 344));
END;`,
}

func BenchmarkPgbench(b *testing.B) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		b.Skip("pgbench is not installed")
	}
	for _, name := range []string{"insert", "seq-per-tx"} {
		b.Run(name, func(b *testing.B) {
			opt := storetest.Options(b, models.Postgres)
			s, err := models.Open(b.Context(), opt)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			db, _ := s.SQLDB()
			if _, err := db.Exec(`CREATE TABLE bench_messages (id text PRIMARY KEY, mesh_id text NOT NULL, seq bigint NOT NULL,
				ciphertext text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
				CREATE TABLE bench_meshes (id text PRIMARY KEY, last_seq bigint NOT NULL);
				INSERT INTO bench_meshes VALUES ('m', 0);`); err != nil {
				b.Fatal(err)
			}
			script := filepath.Join(b.TempDir(), "script.sql")
			if err := os.WriteFile(script, []byte(pgbenchScripts[name]), 0o600); err != nil {
				b.Fatal(err)
			}
			c := benchConcurrency()
			perClient := max(b.N/c, 1)
			u, _ := url.Parse(opt.DatabaseURL)
			schema := u.Query().Get("search_path")
			q := u.Query()
			q.Del("search_path")
			u.RawQuery = q.Encode()
			cmd := exec.Command("pgbench", "-n", "-c", strconv.Itoa(c), "-j", "2", "-t", strconv.Itoa(perClient), "-f", script, u.String())
			cmd.Env = append(os.Environ(), "PGOPTIONS=-c search_path="+schema)
			b.ResetTimer()
			start := time.Now()
			out, err := cmd.CombinedOutput()
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatalf("pgbench: %v\n%s", err, out)
			}
			for _, line := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(line, "tps = ") {
					f := strings.Fields(line)
					if tps, err := strconv.ParseFloat(f[2], 64); err == nil {
						b.ReportMetric(tps, "pgbench-tps")
					}
				}
			}
			b.ReportMetric(float64(perClient*c)/elapsed.Seconds(), "rows/s")
			b.ReportMetric(float64(c), "clients")
		})
	}
}
