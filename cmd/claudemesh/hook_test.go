package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
)

// hookFixture is a recorded-shape Claude Code hook payload.
func hookFixture(t *testing.T, event string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "claudecode", "testdata", "hooks", event+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runHook runs the CLI with stdin (nil: a pipe that is never closed) and
// returns stderr, the exit code and how long it took.
func (h *home) runHook(stdin []byte, args ...string) (string, int, time.Duration) {
	h.t.Helper()
	_, cli := binaries(h.t)
	cmd := exec.Command(cli, args...)
	// The race runtime sleeps 1 s at exit by default: not the hook's time.
	cmd.Env = append(os.Environ(), h.env...)
	cmd.Env = append(cmd.Env, "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var errb bytes.Buffer
	cmd.Stderr = &errb
	var keep io.WriteCloser
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	} else {
		w, err := cmd.StdinPipe()
		if err != nil {
			h.t.Fatal(err)
		}
		keep = w
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	// A hung hook is killed past the bound, so the test reports it
	// instead of waiting forever.
	timer := time.AfterFunc(2*hookHangBound, func() { _ = cmd.Process.Kill() })
	err := cmd.Wait()
	timer.Stop()
	took := time.Since(start)
	if keep != nil {
		keep.Close()
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		h.t.Fatal(err)
	}
	return errb.String(), code, took
}

// hookHangBound is how long a hook may take before the test calls it hung.
const hookHangBound = 20 * time.Second

// TestHooksBrokerDown: with the broker refusing connections, or accepting
// them and never answering, every hook exits 0 on its own and says why on
// stderr; a stdin nobody closes does not hold it either.
func TestHooksBrokerDown(t *testing.T) {
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() { // accept and never answer
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := hung.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	servers := map[string]string{
		"refused": fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"hung":    "http://" + hung.Addr().String(),
	}
	for name, server := range servers {
		t.Run(name, func(t *testing.T) {
			h := newHome(t)
			hm := peer.Home{Dir: h.dir}
			id, _, err := hm.LoadOrCreateIdentity()
			if err != nil {
				t.Fatal(err)
			}
			cfg := &peer.Config{}
			cfg.Upsert(peer.Mesh{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Slug: "down", Server: server, MemberID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
				DisplayName: "ada", Pubkey: id.PublicKeyHex(), APIKey: "cmk_test"})
			if err := hm.Save(cfg); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				args  []string
				stdin []byte
				quiet bool // nothing to report: no stderr line
			}{
				{[]string{"hook", "working"}, hookFixture(t, "UserPromptSubmit"), false},
				{[]string{"hook", "idle"}, hookFixture(t, "Stop"), false},
				{[]string{"hook", "idle"}, nil, false},
				{[]string{"hook", "set-status"}, hookFixture(t, "Stop"), false},
				{[]string{"hook", "set-status"}, hookFixture(t, "UserPromptSubmit"), false},
				{[]string{"hook", "set-status"}, hookFixture(t, "PreToolUse"), true},
				{[]string{"hook", "set-status"}, hookFixture(t, "SomeFutureEvent"), true},
				{[]string{"hook", "set-status"}, nil, true},
			} {
				errs, code, took := h.runHook(tc.stdin, tc.args...)
				// The hook's own budget is 1.2 s. The hung server never
				// answers and the nil stdin never closes, so a hook that
				// waited on either would never end: a generous bound catches
				// that without timing the machine (a loaded CI machine once
				// took 2.04 s).
				if code != 0 || took > hookHangBound {
					t.Errorf("%v (stdin %d bytes): exit %d after %s; stderr %q", tc.args, len(tc.stdin), code, took, errs)
				}
				if tc.quiet != (errs == "") || (!tc.quiet && !strings.Contains(errs, "not reported")) {
					t.Errorf("%v: stderr %q", tc.args, errs)
				}
			}
		})
	}
}

// TestHookBeatsInference: end to end through the broker, a hook signal
// within HOOK_FRESH_WINDOW_SECONDS keeps its rank over the transcript
// inference of `claudemesh mcp` (same status: the hook's source stays),
// and the inference takes effect when the turn changes.
func TestHookBeatsInference(t *testing.T) {
	b := startBroker(t)
	inv := b.invites(1)
	bob := newHome(t)
	bob.must("join", inv[0], "--server", b.url, "--name", "bob")
	project := t.TempDir()
	tdir := filepath.Join(bob.dir, ".claude", "projects", strings.ReplaceAll(project, "/", "-"))
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		t.Fatal(err)
	}
	transcript := filepath.Join(tdir, "4f1c2a9e.jsonl")
	fixture := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "claudecode", "testdata", "transcripts", name))
		if err != nil {
			t.Fatal(err)
		}
		// Fresh timestamps, so the tool call is not stale.
		return bytes.ReplaceAll(b, []byte("2026-12-01T12:00"), []byte(time.Now().UTC().Format("2006-01-02T15:04")))
	}
	if err := os.WriteFile(transcript, fixture("turn_ended.jsonl"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := bob.startMCPIn(project, "cc-bob")
	peerOf := func(ok func(client.Peer) bool) client.Peer {
		t.Helper()
		api, err := peer.NewREST(b.url, bobKey(t, bob), nil)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Minute)
		for {
			r, err := api.ListPeersWithResponse(context.Background(), nil)
			if err == nil && r.JSON200 != nil {
				for _, p := range r.JSON200.Items {
					if p.SessionId == "cc-bob" && ok(p) {
						return p
					}
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob's session never matched; mcp stderr:\n%s", s.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	s.waitLog(t, "transcript: idle")
	peerOf(func(p client.Peer) bool { return p.Status == "idle" })

	// The prompt hook: working, source hook.
	errs, code, _ := bob.runHookIn(project, hookFixture(t, "UserPromptSubmit"), "hook", "set-status")
	if code != 0 || errs != "" {
		t.Fatalf("hook: exit %d, %q", code, errs)
	}
	peerOf(func(p client.Peer) bool { return p.Status == "working" && p.StatusSource == "hook" })

	// The transcript shows a tool call: the same status from jsonl, within
	// the fresh window, leaves the hook's source in place.
	if err := os.WriteFile(transcript, fixture("tool_in_flight.jsonl"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, "transcript: working")
	if p := peerOf(func(client.Peer) bool { return true }); p.Status != "working" || p.StatusSource != "hook" {
		t.Fatalf("after the inference: %s from %s", p.Status, p.StatusSource)
	}

	// The turn ends: a changed status from the transcript applies.
	if err := os.WriteFile(transcript, fixture("turn_ended.jsonl"), 0o600); err != nil {
		t.Fatal(err)
	}
	peerOf(func(p client.Peer) bool { return p.Status == "idle" && p.StatusSource == "jsonl" })
}

// bobKey reads a home's API key from its config.
func bobKey(t *testing.T, h *home) string {
	t.Helper()
	cfg, err := peer.Home{Dir: h.dir}.Load()
	if err != nil || len(cfg.Meshes) == 0 {
		t.Fatal(err)
	}
	return cfg.Meshes[0].APIKey
}

// runHookIn is runHook from a directory.
func (h *home) runHookIn(dir string, stdin []byte, args ...string) (string, int, time.Duration) {
	h.t.Helper()
	saved := h.env
	h.env = append(append([]string(nil), h.env...), "CLAUDE_PROJECT_DIR="+dir)
	defer func() { h.env = saved }()
	// The fixture names another cwd: use the payload without it.
	stdin = bytes.Replace(stdin, []byte(`"cwd":"/home/ada/src/app",`), nil, 1)
	return h.runHook(stdin, args...)
}
