package deploy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// brokerEnv is the environment of a broker process the backup tests start.
func brokerEnv(kv ...string) []string {
	return append(os.Environ(), append([]string{"LOG_LEVEL=warn", "DATABASE_URL=", "BROKER_PORT=", "NATS_URL="}, kv...)...)
}

// runBroker runs one broker command to its end.
func runBroker(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(brokerBinary(t), args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// topicSeqs reads #general from seq 1 through a fresh stream until want.
func topicSeqs(t *testing.T, base, key string, want int64) map[string]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/topics/general/stream?since=0", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := map[string]int64{}
	_ = readSSE(resp.Body, func(ev sseEvent) bool {
		if ev.Event != "message" {
			return true
		}
		seq, _ := strconv.ParseInt(ev.ID, 10, 64)
		i := strings.Index(ev.Data, `"clientMessageId":"`)
		if i < 0 {
			t.Errorf("message %d has no clientMessageId: %s", seq, ev.Data)
			return false
		}
		cid := ev.Data[i+len(`"clientMessageId":"`):]
		cid = cid[:strings.IndexByte(cid, '"')]
		got[cid] = seq
		return seq < want
	})
	return got
}

// TestSQLiteBackupWhileServing takes an online backup of the embedded
// SQLite while posts keep coming, restores it into a new file with the
// restore command (refused over the file of a serving broker), checks the
// restored copy with `audit verify`, and serves it: every post
// acknowledged before the backup began is there, in order, without holes.
func TestSQLiteBackupWhileServing(t *testing.T) {
	dir := t.TempDir()
	live, backup, restored := filepath.Join(dir, "live.db"), filepath.Join(dir, "backup.db"), filepath.Join(dir, "restored.db")
	addr := freeAddr(t)
	cmd := exec.Command(brokerBinary(t), "serve")
	cmd.Env = brokerEnv("CLAUDEMESH_SQLITE_PATH="+live, "BROKER_ADDR="+addr,
		"RATE_LIMIT_PER_SECOND=100000", "RATE_LIMIT_BURST=100000")
	broker := startProc(t, cmd)
	base := "http://" + addr
	waitReady(t, broker, base+"/ready")
	a := newAPI(base)
	_, peers := newMesh(t, a, 1)

	var (
		mu    sync.Mutex
		acked = map[string]int64{}
	)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for n := 0; ctx.Err() == nil; n++ {
			cid := fmt.Sprintf("b-%d", n)
			if seq, err := a.post(context.Background(), peers[0].Key, cid, cid); err == nil {
				mu.Lock()
				acked[cid] = seq
				mu.Unlock()
			}
		}
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for count() < 100 {
		time.Sleep(5 * time.Millisecond) // polling the poster's counter
	}
	mu.Lock()
	before := make(map[string]int64, len(acked))
	for k, v := range acked {
		before[k] = v
	}
	mu.Unlock()
	out, err := runBroker(t, brokerEnv("CLAUDEMESH_SQLITE_PATH="+live), "backup", backup)
	if err != nil || !strings.Contains(out, "backed up") {
		t.Fatalf("backup while serving: %v\n%s", err, out)
	}
	afterBackup := count()
	for count() < afterBackup+50 {
		time.Sleep(5 * time.Millisecond) // posts go on after the backup
	}
	if out, err := runBroker(t, brokerEnv("CLAUDEMESH_SQLITE_PATH="+live), "backup", backup); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("a backup over an existing file: %v %s", err, out)
	}
	if out, err := runBroker(t, brokerEnv("CLAUDEMESH_SQLITE_PATH="+live), "restore", backup); err == nil || !strings.Contains(out, "in use by another broker process") {
		t.Errorf("restore over a serving broker's file: %v %s", err, out)
	}
	stop()
	wg.Wait()
	if err := broker.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("broker: %v", err)
	}

	if out, err := runBroker(t, brokerEnv("CLAUDEMESH_SQLITE_PATH="+restored), "restore", backup); err != nil || !strings.Contains(out, "restored") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	out, err = runBroker(t, brokerEnv("CLAUDEMESH_SQLITE_PATH="+restored), "audit", "verify")
	if err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("audit verify on the restored copy: %v\n%s", err, out)
	}
	t.Logf("restored copy: %s", strings.TrimSpace(out))

	addr2 := freeAddr(t)
	cmd = exec.Command(brokerBinary(t), "serve")
	cmd.Env = brokerEnv("CLAUDEMESH_SQLITE_PATH="+restored, "BROKER_ADDR="+addr2)
	b2 := startProc(t, cmd)
	waitReady(t, b2, "http://"+addr2+"/ready")
	var maxBefore int64
	for _, s := range before {
		maxBefore = max(maxBefore, s)
	}
	got := topicSeqs(t, "http://"+addr2, peers[0].Key, maxBefore)
	for cid, seq := range before {
		if got[cid] != seq {
			t.Errorf("post %s (seq %d), acknowledged before the backup, restored as seq %d", cid, seq, got[cid])
		}
	}
	if int64(len(got)) < maxBefore {
		t.Errorf("restored topic has %d messages up to seq %d: holes", len(got), maxBefore)
	}
	t.Logf("%d posts acknowledged before the backup began, %d in all; the backup holds at least seq 1..%d", len(before), len(acked), maxBefore)
}

// TestPostgresDumpRestore performs the PostgreSQL procedure docs/DEPLOY.md
// gives (pg_dump -Fc while serving, pg_restore into an empty database) and
// checks the restored database with `audit verify`.
func TestPostgresDumpRestore(t *testing.T) {
	pgDump := needTool(t, "pg_dump", "apt-get install postgresql-client")
	pgRestore := needTool(t, "pg_restore", "apt-get install postgresql-client")
	src, dst := storetest.Database(t), storetest.Database(t)
	addr := freeAddr(t)
	cmd := exec.Command(brokerBinary(t), "serve")
	cmd.Env = brokerEnv("DATABASE_URL="+src, "BROKER_ADDR="+addr)
	broker := startProc(t, cmd)
	base := "http://" + addr
	waitReady(t, broker, base+"/ready")
	a := newAPI(base)
	_, peers := newMesh(t, a, 2)
	for n := range 20 {
		if _, err := a.post(context.Background(), peers[n%2].Key, fmt.Sprintf("pg-%d", n), "hello"); err != nil {
			t.Fatal(err)
		}
	}
	dump := filepath.Join(t.TempDir(), "claudemesh.dump")
	if out, err := exec.Command(pgDump, "--format=custom", "--no-owner", "--file="+dump, "--dbname="+src).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}
	if err := broker.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pgRestore, "--no-owner", "--exit-on-error", "--dbname="+dst, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	wantOut, err := runBroker(t, brokerEnv("DATABASE_URL="+src), "audit", "verify")
	if err != nil {
		t.Fatalf("audit verify on the source: %v\n%s", err, wantOut)
	}
	out, err := runBroker(t, brokerEnv("DATABASE_URL="+dst), "audit", "verify")
	if err != nil || out != wantOut {
		t.Errorf("audit verify on the restored database: %v\n%s(the source said %s)", err, out, wantOut)
	}
	if out, err := runBroker(t, brokerEnv("DATABASE_URL="+dst), "backup", "/tmp/never"); err == nil || !strings.Contains(out, "pg_dump") {
		t.Errorf("backup on PostgreSQL: %v %s", err, out)
	}
	addr2 := freeAddr(t)
	cmd = exec.Command(brokerBinary(t), "serve")
	cmd.Env = brokerEnv("DATABASE_URL="+dst, "BROKER_ADDR="+addr2)
	b2 := startProc(t, cmd)
	waitReady(t, b2, "http://"+addr2+"/ready")
	if got := topicSeqs(t, "http://"+addr2, peers[0].Key, 20); len(got) != 20 {
		t.Errorf("restored database has %d of 20 posts", len(got))
	}
}
