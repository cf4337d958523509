package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// broker is a serve command running in this process.
type broker struct {
	addr string // where it listens, from its "broker listening" line
	stop context.CancelFunc
	done chan error
}

// startServe runs serve with env and waits until it logs where it listens
// or exits. The error is serve's own when it exits before listening.
func startServe(t *testing.T, env map[string]string) (*broker, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	b := &broker{stop: cancel, done: make(chan error, 1)}
	go func() {
		err := run(ctx, []string{"serve"}, envOf(env), io.Discard, pw)
		_ = pw.CloseWithError(io.EOF)
		b.done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "broker listening" {
				addr <- line.Addr
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case b.addr = <-addr:
		t.Cleanup(func() {
			b.stop()
			if err := <-b.done; err != nil {
				t.Logf("broker ended: %v", err)
			}
		})
		return b, nil
	case err := <-b.done:
		cancel()
		return nil, err
	}
}

// TestListenAddress: BROKER_ADDR binds the broker to one address, and the
// healthcheck command finds it there; BROKER_PORT keeps working.
func TestListenAddress(t *testing.T) {
	for _, tc := range []struct{ name, v, val, wantHost string }{
		{"loopback v4", "BROKER_ADDR", "127.0.0.1:0", "127.0.0.1"},
		{"loopback v6", "BROKER_ADDR", "[::1]:0", "::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{tc.v: tc.val, "CLAUDEMESH_SQLITE_PATH": filepath.Join(t.TempDir(), "cm.db")}
			b, err := startServe(t, env)
			if err != nil {
				if strings.Contains(err.Error(), "cannot assign requested address") {
					t.Skipf("no %s on this machine: %v", tc.wantHost, err)
				}
				t.Fatal(err)
			}
			host, port, _ := net.SplitHostPort(b.addr)
			if host != tc.wantHost {
				t.Errorf("listening on %s, want host %s", b.addr, tc.wantHost)
			}
			env[tc.v] = net.JoinHostPort(tc.wantHost, port)
			var out bytes.Buffer
			if err := run(context.Background(), []string{"healthcheck"}, envOf(env), &out, io.Discard); err != nil || strings.TrimSpace(out.String()) != "ready" {
				t.Errorf("healthcheck: %v %q", err, out.String())
			}
		})
	}
	t.Run("both set", func(t *testing.T) {
		err := run(context.Background(), []string{"serve"}, envOf(map[string]string{"BROKER_ADDR": "127.0.0.1:0", "BROKER_PORT": "7900"}), io.Discard, io.Discard)
		if err == nil || err.Error() != "bad configuration: BROKER_ADDR: set BROKER_ADDR or BROKER_PORT, not both" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("healthcheck fails when nothing answers", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		err := run(context.Background(), []string{"healthcheck"}, envOf(map[string]string{"BROKER_ADDR": addr}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "not ready") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestSecondBrokerOnOneSQLiteFileIsRefused: the embedded SQLite serves one
// broker process; a second one on the same file waits for the first to let
// go, then is refused with a line that says why and what to do, and
// starts once the first has stopped.
func TestSecondBrokerOnOneSQLiteFileIsRefused(t *testing.T) {
	old := sqliteLockWait
	// So short that only an uncontended lock is taken. It once also bounded
	// the first broker's migration, which a loaded machine then cut off
	// ("interrupted"): the migration must not be bounded by it.
	sqliteLockWait = time.Nanosecond
	t.Cleanup(func() { sqliteLockWait = old })
	env := map[string]string{"BROKER_ADDR": "127.0.0.1:0", "CLAUDEMESH_SQLITE_PATH": filepath.Join(t.TempDir(), "cm.db")}
	first, err := startServe(t, env)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startServe(t, env); err == nil || !strings.Contains(err.Error(), "in use by another broker process") ||
		!strings.Contains(err.Error(), "run replicas on PostgreSQL") {
		t.Fatalf("second broker: %v", err)
	}
	// Read-only tools still work beside the serving broker.
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit", "verify"}, envOf(env), &out, io.Discard); err != nil {
		t.Errorf("audit verify beside a serving broker: %v", err)
	}
	first.stop()
	if err := <-first.done; err != nil {
		t.Fatal(err)
	}
	first.done <- nil // for the cleanup
	if _, err := startServe(t, env); err != nil {
		t.Errorf("after the first stopped: %v", err)
	}
}
