package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// testVersion is stamped into the binary the tests build, so the image's
// version label and `claudemesh-broker version` can be checked.
const testVersion = "v0.0.0-deploytest"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// repoRoot is the repository, one folder up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	abs, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// brokerBinary builds the broker once per test run the way the image wants
// it: static (CGO off), trimmed, with the version stamped in.
func brokerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "claudemesh-deploy")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+testVersion,
			"-o", filepath.Join(buildDir, "claudemesh-broker"), "./cmd/claudemesh-broker")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "claudemesh-broker")
}

// needTool finds a program the test drives. Missing, it skips the test on
// a developer's machine and fails it in CI (CI=true), where .ci/run
// installs it: a recipe must never go unchecked in CI without notice.
func needTool(t testing.TB, name, install string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not installed (%s)", name, install)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must have it: .ci/run installs it")
	}
	t.Skip(msg)
	return ""
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a broker (or other) process the test started.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	log  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc starts cmd with its output kept for failure messages, and
// kills it when the test ends if it is still running.
func startProc(t testing.TB, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{}), log: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// signal sends sig and waits (up to 30 s) for the process to end.
func (p *proc) stop(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return p.err
	case <-time.After(30 * time.Second):
		t.Fatalf("process did not end within 30 s of %v; log:\n%s", sig, p.log.String())
		return nil
	}
}

// waitReady polls url until it answers 200 or the process exits.
func waitReady(t testing.TB, p *proc, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-p.done:
			t.Fatalf("process exited before %s answered: %v; log:\n%s", url, p.err, p.log.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s never answered 200; log:\n%s", url, p.log.String())
}

// api is a tiny client for the broker's REST routes.
type api struct {
	base string
	hc   *http.Client
}

func newAPI(base string) *api {
	return &api{base: strings.TrimRight(base, "/"), hc: &http.Client{Timeout: 30 * time.Second}}
}

// call sends a JSON request and decodes a JSON answer into out.
func (a *api) call(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s %s: %w (%s)", method, path, err, b)
		}
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode, nil
}

func (a *api) must(t testing.TB, method, path, token string, body, out any) {
	t.Helper()
	if _, err := a.call(context.Background(), method, path, token, body, out); err != nil {
		t.Fatal(err)
	}
}

// member is a peer that joined a mesh: its key for REST and its identity
// for /ws.
type member struct {
	ID, Key, Name string
	Identity      meshcrypto.Identity
}

// newMesh signs a user up, creates a mesh and joins n peers to it.
func newMesh(t testing.TB, a *api, n int) (meshID string, peers []member) {
	t.Helper()
	var s struct {
		AccessToken string `json:"accessToken"`
	}
	a.must(t, "POST", "/v1/auth/signup", "", map[string]string{"email": fmt.Sprintf("ops-%d@example.com", time.Now().UnixNano()),
		"password": "correct horse battery", "name": "Ops"}, &s)
	var m struct {
		Mesh struct {
			ID string `json:"id"`
		} `json:"mesh"`
	}
	a.must(t, "POST", "/v1/meshes", s.AccessToken, map[string]string{"name": "Deploy test"}, &m)
	var inv struct {
		Token string `json:"token"`
	}
	a.must(t, "POST", "/v1/meshes/"+m.Mesh.ID+"/invites", s.AccessToken, map[string]any{"maxUses": n}, &inv)
	for i := range n {
		id, err := meshcrypto.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			Member struct {
				ID string `json:"id"`
			} `json:"member"`
			APIKey struct {
				Key string `json:"key"`
			} `json:"apiKey"`
		}
		name := fmt.Sprintf("peer-%d", i)
		a.must(t, "POST", "/v1/join", "", map[string]string{"token": inv.Token, "pubkey": id.PublicKeyHex(), "displayName": name}, &j)
		peers = append(peers, member{ID: j.Member.ID, Key: j.APIKey.Key, Name: name, Identity: id})
	}
	return m.Mesh.ID, peers
}

// post sends one v1 message to #general and returns its seq.
func (a *api) post(ctx context.Context, key, cid, text string) (int64, error) {
	var out struct {
		Seq int64 `json:"seq"`
	}
	_, err := a.call(ctx, "POST", "/v1/messages", key, map[string]any{"topic": "general", "bodyVersion": 1,
		"ciphertext": meshcrypto.EncodeV1(text), "clientMessageId": cid}, &out)
	return out.Seq, err
}

// sseEvent is one event of a topic stream.
type sseEvent struct {
	ID, Event, Data string
}

// readSSE reads events from a stream body until it ends, sending each to fn;
// fn returning false stops.
func readSSE(r io.Reader, fn func(sseEvent) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.ID != "" || ev.Event != "" || ev.Data != "" {
				if !fn(ev) {
					return nil
				}
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id:"):
			ev.ID = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			ev.Event = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			ev.Data += strings.TrimPrefix(line[5:], " ")
		}
	}
	return sc.Err()
}

// pauses records the longest time between two deliveries a client saw.
type pauses struct {
	mu   sync.Mutex
	last map[string]time.Time
	max  map[string]time.Duration
	long []string // pauses over a second, with when they ended
}

func (p *pauses) tick(who string) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if l, ok := p.last[who]; ok && now.Sub(l) > p.max[who] {
		p.max[who] = now.Sub(l)
	}
	if l, ok := p.last[who]; ok && now.Sub(l) > time.Second {
		p.long = append(p.long, fmt.Sprintf("%s %s %v", now.Format("15:04:05.000"), who, now.Sub(l).Round(time.Millisecond)))
	}
	p.last[who] = now
}

func (p *pauses) longest(prefix string) (time.Duration, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d time.Duration
	var who string
	for k, v := range p.max {
		if strings.HasPrefix(k, prefix) && v > d {
			d, who = v, k
		}
	}
	return d, who
}

// wait pauses for d, or less if ctx ends (a retry's back-off).
func wait(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
