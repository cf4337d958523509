package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
	"github.com/claudemesh/claudemesh-go/peer"
)

// These tests call the commands' run functions directly, with their own
// streams, against an in-process broker: no binary is built and no cobra
// parsing is involved (cmd/claudemesh has the end-to-end tests).

// testBroker starts a broker on loopback and returns its URL and n invites.
func testBroker(t *testing.T, n int) (string, []string) {
	t.Helper()
	cfg, err := api.LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = bytes.Repeat([]byte("k"), 32)
	cfg.RateLimit, cfg.RateLimitBurst, cfg.AuthRateLimit, cfg.AuthRateLimitBurst = 10000, 10000, 10000, 10000
	srv, err := api.New(context.Background(), cfg, storetest.Open(t, models.SQLite), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Echo)
	t.Cleanup(hs.Close)
	ctx := context.Background()
	anon, _ := peer.NewREST(hs.URL, "", nil)
	sr, err := anon.SignupWithResponse(ctx, client.SignupRequest{Email: "owner@example.com", Name: "Owner", Password: "correct horse battery"})
	if err != nil || sr.JSON201 == nil {
		t.Fatalf("signup: %v", err)
	}
	user, _ := peer.NewREST(hs.URL, sr.JSON201.AccessToken, nil)
	mr, err := user.CreateMeshWithResponse(ctx, client.CreateMeshRequest{Name: "Run Mesh"})
	if err != nil || mr.JSON201 == nil {
		t.Fatalf("create mesh: %v", err)
	}
	var out []string
	for range n {
		ir, err := user.CreateInviteWithResponse(ctx, mr.JSON201.Mesh.Id, client.CreateInviteRequest{MaxUses: ptr(1)})
		if err != nil || ir.JSON201 == nil {
			t.Fatalf("invite: %v", err)
		}
		out = append(out, ir.JSON201.Token)
	}
	return hs.URL, out
}

// testApp is one member's CLI state: its own config dir.
func testApp(t *testing.T) *app {
	dir := t.TempDir()
	env := map[string]string{"CLAUDEMESH_CONFIG_DIR": dir}
	return &app{env: Env{Getenv: func(k string) string { return env[k] }, Now: time.Now, HTTP: httptestClient()}, home: peer.Home{Dir: dir}}
}

func httptestClient() *http.Client { return &http.Client{Timeout: 30 * time.Second} }

// buffers are a command's streams.
type buffers struct{ out, errOut bytes.Buffer }

func (b *buffers) io(in string) ioStreams {
	return ioStreams{In: strings.NewReader(in), Out: &b.out, ErrOut: &b.errOut}
}

func TestRunFunctions(t *testing.T) {
	server, invites := testBroker(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	alice, bob := testApp(t), testApp(t)
	for i, m := range []struct {
		a    *app
		name string
	}{{alice, "alice"}, {bob, "bob"}} {
		var b buffers
		if err := runJoin(ctx, &joinOptions{app: m.a, io: b.io(""), Invite: invites[i], Server: server, Name: m.name}); err != nil {
			t.Fatalf("join %s: %v", m.name, err)
		}
		if !strings.Contains(b.out.String(), "as @"+m.name) {
			t.Fatalf("join %s printed %q", m.name, b.out.String())
		}
	}

	t.Run("topic post, then history", func(t *testing.T) {
		var b buffers
		if err := runTopicPost(ctx, &topicPostOptions{app: alice, io: b.io("from stdin\n"), Topic: "#general", Text: "-", JSON: true}); err != nil {
			t.Fatal(err)
		}
		var posted struct {
			Seq   int64  `json:"seq"`
			Topic string `json:"topic"`
		}
		if err := json.Unmarshal(b.out.Bytes(), &posted); err != nil || posted.Topic != "general" || posted.Seq < 1 {
			t.Fatalf("post printed %q (%v)", b.out.String(), err)
		}
		var h buffers
		if err := runTopicHistory(ctx, &topicHistoryOptions{app: alice, io: h.io(""), Topic: "general", Limit: 10}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(h.out.String(), "@alice: from stdin") {
			t.Errorf("history printed %q", h.out.String())
		}
		// bob has no seal of the key yet: the message is pending for him.
		var hb buffers
		if err := runTopicHistory(ctx, &topicHistoryOptions{app: bob, io: hb.io(""), Topic: "general", Limit: 10}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(hb.out.String(), "[encrypted: no key for you yet]") || !strings.Contains(hb.errOut.String(), "pending") {
			t.Errorf("bob's history printed %q / %q", hb.out.String(), hb.errOut.String())
		}
	})

	t.Run("send, then inbox", func(t *testing.T) {
		var b buffers
		if err := runSend(ctx, &sendOptions{app: alice, io: b.io(""), To: "@bob", Text: "ping from a run function", Priority: "now"}); err != nil {
			t.Fatal(err)
		}
		if got := b.out.String(); got != "sent to @bob\n" {
			t.Errorf("send printed %q", got)
		}
		var ib buffers
		if err := runInbox(ctx, &inboxOptions{app: bob, io: ib.io(""), Wait: time.Second, JSON: true}); err != nil {
			t.Fatal(err)
		}
		var got directView
		if err := json.Unmarshal(ib.out.Bytes(), &got); err != nil || got.Text == nil || *got.Text != "ping from a run function" || got.From != "alice" {
			t.Fatalf("inbox printed %q (%v)", ib.out.String(), err)
		}
	})

	t.Run("refusals keep their exit codes", func(t *testing.T) {
		var b buffers
		err := runSend(ctx, &sendOptions{app: alice, io: b.io(""), To: "@nobody", Text: "hi", Priority: "next"})
		if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "no member @nobody") {
			t.Errorf("send to an unknown member: %v (exit %d)", err, ExitCode(err))
		}
		// Names resolve as a person expects: the @ forgotten, or a typo.
		for to, want := range map[string]string{"bob": "did you mean @bob?", "@bbo": "did you mean @bob?"} {
			err := runSend(ctx, &sendOptions{app: alice, io: b.io(""), To: to, Text: "hi", Priority: "next"})
			if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), want) {
				t.Errorf("send to %q: %v (exit %d), want %q", to, err, ExitCode(err), want)
			}
		}
		err = runTopicPost(ctx, &topicPostOptions{app: bob, io: b.io(""), Topic: "general", Text: "no key"})
		if ExitCode(err) != ExitRefused {
			t.Errorf("post without a seal: %v (exit %d), want %d", err, ExitCode(err), ExitRefused)
		}
		// A 422 names the field and its rule (it used to say only "the
		// request has invalid fields").
		err = runTopicCreate(ctx, &topicCreateOptions{app: alice, io: b.io(""), Name: "Bad Name", Visibility: "public"})
		if ExitCode(err) != ExitRefused || !strings.Contains(err.Error(), "name must match ^#?[a-z0-9][a-z0-9-]{0,49}$") {
			t.Errorf("topic create \"Bad Name\": %v (exit %d)", err, ExitCode(err))
		}
	})
}
