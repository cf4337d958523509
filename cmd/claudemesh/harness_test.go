package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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

	"github.com/google/uuid"
	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
	"github.com/claudemesh/claudemesh-go/peer"
)

// raceFlags builds the binaries with the race detector when the tests run
// with it (race_test.go).
var raceFlags []string

// bins holds the broker and CLI binaries, built once per test run.
var bins struct {
	once        sync.Once
	dir         string
	broker, cli string
	err         error
	buildOutput []byte
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binaries builds cmd/claudemesh-broker and cmd/claudemesh with go build.
func binaries(t *testing.T) (broker, cli string) {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "claudemesh-e2e")
		if bins.err != nil {
			return
		}
		bins.broker = filepath.Join(bins.dir, "claudemesh-broker")
		bins.cli = filepath.Join(bins.dir, "claudemesh")
		args := append([]string{"build"}, raceFlags...)
		args = append(args, "-o", bins.dir+string(filepath.Separator), "../claudemesh-broker", ".")
		cmd := exec.Command("go", args...)
		bins.buildOutput, bins.err = cmd.CombinedOutput()
	})
	if bins.err != nil {
		t.Fatalf("go build: %v\n%s", bins.err, bins.buildOutput)
	}
	return bins.broker, bins.cli
}

// broker is a claudemesh-broker process on PostgreSQL.
type broker struct {
	t     *testing.T
	bin   string
	dbURL string
	port  int
	url   string
	cmd   *exec.Cmd
	log   *bytes.Buffer
	done  chan struct{}
	// set by invites: the mesh and its owner's access token
	meshID    openapi_types.UUID
	userToken string
}

// admin is a REST client acting as the mesh owner (a member session).
func (b *broker) admin() *client.ClientWithResponses {
	b.t.Helper()
	user, _ := peer.NewREST(b.url, b.userToken, nil)
	sr, err := user.CreateMemberSessionWithResponse(context.Background(), b.meshID, client.CreateMemberSessionRequest{})
	if err != nil || sr.JSON201 == nil {
		b.t.Fatalf("member session: %v %s", err, body(err, sr))
	}
	admin, _ := peer.NewREST(b.url, sr.JSON201.Token, nil)
	return admin
}

// rotate starts a new key epoch of a topic, as the mesh owner.
func (b *broker) rotate(topic string) {
	b.t.Helper()
	rr, err := b.admin().RotateTopicKeyWithResponse(context.Background(), topic)
	if err != nil || rr.StatusCode() >= 300 {
		b.t.Fatalf("rotate #%s: %v %s", topic, err, body(err, rr))
	}
}

// revoke removes a member, as the mesh owner (through a member session).
func (b *broker) revoke(memberID string) {
	b.t.Helper()
	ctx := context.Background()
	admin := b.admin()
	id, err := uuid.Parse(memberID)
	if err != nil {
		b.t.Fatal(err)
	}
	rr, err := admin.RevokeMemberWithResponse(ctx, id)
	if err != nil || rr.StatusCode() >= 300 {
		b.t.Fatalf("revoke: %v %s", err, body(err, rr))
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startBroker runs a broker on a fresh PostgreSQL schema and waits for /ready.
func startBroker(t *testing.T) *broker {
	t.Helper()
	bin, _ := binaries(t)
	opt := storetest.Options(t, models.Postgres)
	b := &broker{t: t, bin: bin, dbURL: opt.DatabaseURL, port: freePort(t)}
	b.url = fmt.Sprintf("http://127.0.0.1:%d", b.port)
	b.start()
	t.Cleanup(b.stop)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	b.log = &bytes.Buffer{}
	b.cmd = exec.Command(b.bin)
	b.cmd.Env = append(os.Environ(), "DATABASE_URL="+b.dbURL, "BROKER_PORT="+strconv.Itoa(b.port), "LOG_LEVEL=warn",
		"RATE_LIMIT_PER_SECOND=10000", "RATE_LIMIT_BURST=10000", "AUTH_RATE_LIMIT_PER_SECOND=1000", "AUTH_RATE_LIMIT_BURST=1000",
		"WS_SENDS_PER_SECOND=1000", "WS_SEND_BURST=1000")
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	b.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(b.cmd, b.done)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(b.url + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-b.done:
			b.t.Fatalf("broker exited at start:\n%s", b.log.String())
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("broker not ready within 60 s:\n%s", b.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to end.
func (b *broker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.done:
		return
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
}

// invites signs up an owner, creates a mesh and mints n invites, through
// the generated client.
func (b *broker) invites(n int) []string {
	b.t.Helper()
	ctx := context.Background()
	anon, err := peer.NewREST(b.url, "", nil)
	if err != nil {
		b.t.Fatal(err)
	}
	sr, err := anon.SignupWithResponse(ctx, client.SignupRequest{Email: "owner@example.com", Name: "Owner", Password: "correct horse battery"})
	if err != nil || sr.JSON201 == nil {
		b.t.Fatalf("signup: %v %s", err, body(err, sr))
	}
	user, _ := peer.NewREST(b.url, sr.JSON201.AccessToken, nil)
	mr, err := user.CreateMeshWithResponse(ctx, client.CreateMeshRequest{Name: "E2E Mesh"})
	if err != nil || mr.JSON201 == nil {
		b.t.Fatalf("create mesh: %v %s", err, body(err, mr))
	}
	b.meshID = mr.JSON201.Mesh.Id
	b.userToken = sr.JSON201.AccessToken
	var out []string
	for range n {
		ir, err := user.CreateInviteWithResponse(ctx, mr.JSON201.Mesh.Id, client.CreateInviteRequest{MaxUses: ptr(5)})
		if err != nil || ir.JSON201 == nil {
			b.t.Fatalf("invite: %v %s", err, body(err, ir))
		}
		out = append(out, ir.JSON201.Token)
	}
	return out
}

// body is a failed call's response body (none when the call itself failed).
func body(err error, r peer.Response) string {
	if err != nil {
		return ""
	}
	return string(r.GetBody())
}

func ptr[T any](v T) *T { return &v }

// home is one CLI user: its own config dir.
type home struct {
	t   *testing.T
	dir string
	env []string
}

func newHome(t *testing.T, extraEnv ...string) *home {
	t.Helper()
	d := t.TempDir()
	return &home{t: t, dir: d, env: append([]string{"CLAUDEMESH_CONFIG_DIR=" + d, "HOME=" + d}, extraEnv...)}
}

// run runs the CLI to completion and returns stdout, stderr and the exit code.
func (h *home) run(args ...string) (string, string, int) {
	h.t.Helper()
	_, cli := binaries(h.t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = append(os.Environ(), h.env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return out.String(), err.Error(), -1
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// must runs the CLI and fails the test unless it exits 0.
func (h *home) must(args ...string) string {
	h.t.Helper()
	out, errs, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("claudemesh %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// proc is a long-running CLI (tail, inbox --follow) whose stdout lines are
// collected.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
	done   chan struct{}
}

func (h *home) start(args ...string) *proc {
	h.t.Helper()
	_, cli := binaries(h.t)
	cmd := exec.Command(cli, args...)
	cmd.Env = append(os.Environ(), h.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	p := &proc{cmd: cmd, lines: make(chan string, 10000), stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = cmd.Wait()
		close(p.done)
	}()
	h.t.Cleanup(p.stop)
	return p
}

// stop sends SIGTERM and waits.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// next waits for the next stdout line, up to d.
func (p *proc) next(t *testing.T, d time.Duration) (string, bool) {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		return l, ok
	case <-time.After(d):
		return "", false
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

func randomWord() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// each runs fn(i) for i in [from, to) on four goroutines and fails the
// test with every message fn returned.
func each(t *testing.T, from, to int, fn func(i int) string) {
	t.Helper()
	next := make(chan int)
	msgs := make(chan string, to-from)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if m := fn(i); m != "" {
					msgs <- m
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(msgs)
	for m := range msgs {
		t.Error(m)
	}
	if t.Failed() {
		t.FailNow()
	}
}
