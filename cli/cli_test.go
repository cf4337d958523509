package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/peer"
)

// runCLI runs the CLI in-process with its config in dir.
func runCLI(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"CLAUDEMESH_CONFIG_DIR": dir}
	code = Run(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] },
		Now: func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }})
	return out.String(), errb.String(), code
}

func TestUsageErrorsExitOne(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"join without invite", []string{"join"}, "accepts 1 arg"},
		{"unknown flag", []string{"peers", "--bogus"}, "unknown flag"},
		{"bad priority", []string{"send", "@bob", "hi", "--priority", "urgent"}, "--priority must be now, next or low"},
		{"bad status", []string{"status", "set", "busy"}, "status must be idle, working or dnd"},
		{"post needs text", []string{"topic", "post", "ops"}, "accepts 2 arg"},
		{"history limit", []string{"topic", "history", "ops", "--limit", "500"}, "--limit must be 1 to 200"},
		{"read seq", []string{"topic", "read", "ops", "x"}, "seq must be a non-negative integer"},
		{"no mesh joined", []string{"whoami"}, "no mesh joined"},
		{"bad invite URL", []string{"join", "ftp://x/y"}, "neither a token nor an http(s) URL"},
		{"bad server", []string{"join", "cmi_x", "--server", "localhost:7900", "--name", "a"}, "want an http:// or https:// URL"},
		{"unknown mesh", []string{"use", "nope"}, "no mesh joined"},
		{"empty post", []string{"topic", "post", "ops", "  "}, "the message is empty"},
		// A typo one level down used to print the group's help and exit 0.
		{"unknown topic subcommand", []string{"topic", "psot", "deploys", "x"}, "unknown command \"psot\" for \"claudemesh topic\"\n\nDid you mean this?\n\tpost"},
		{"unknown status subcommand", []string{"status", "busy"}, "unknown command \"busy\" for \"claudemesh status\""},
		{"unknown hook subcommand", []string{"hook", "wrking"}, "Did you mean this?\n\tworking"},
		{"typo at the root", []string{"sned", "@bob", "hi"}, "Did you mean this?\n\tsend"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errs, code := runCLI(t, t.TempDir(), tc.args...)
			if code != ExitUsage {
				t.Errorf("exit %d, want %d; stderr %q", code, ExitUsage, errs)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q lacks %q", errs, tc.want)
			}
		})
	}
}

func TestEveryCommandHasHelpWithAnExample(t *testing.T) {
	t.Parallel()
	a := &app{env: Env{Getenv: func(string) string { return "" }}}
	root := a.rootCommand()
	stack := root.Commands()
	for len(stack) > 0 {
		c := stack[0]
		stack = append(stack[1:], c.Commands()...)
		if c.Example == "" {
			t.Errorf("`%s` has no example", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("`%s` has no short help", c.CommandPath())
		}
	}
	out, _, code := runCLI(t, t.TempDir(), "topic", "tail", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "--no-reseal") {
		t.Errorf("tail --help (exit %d):\n%s", code, out)
	}
}

// fakeJoin is a broker that accepts any join.
func fakeJoin(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/join" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"type":"about:blank","title":"Not Found","status":404,"code":"topic_not_found"}`)
			return
		}
		var req client.JoinRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Token == "bad" {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusGone)
			_, _ = io.WriteString(w, `{"type":"about:blank","title":"Gone","status":410,"code":"invite_expired","detail":"the invite expired"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"mesh":   map[string]any{"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "slug": "platform", "name": "Platform"},
			"member": map[string]any{"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "meshId": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "displayName": req.DisplayName, "pubkey": req.Pubkey, "role": "member", "joinedAt": "2026-12-01T11:00:00Z", "revokedAt": nil, "userId": nil},
			"apiKey": map[string]any{"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d", "key": "cm_SECRETSECRETSECRET", "prefix": "cm_SECRETSE", "name": "join", "capabilities": []string{"read", "send"}, "memberId": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c", "createdAt": "2026-12-01T11:00:00Z", "expiresAt": nil, "lastUsedAt": nil, "revokedAt": nil, "topicScopes": nil},
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestJoinWritesSecretsWithMode0600AndNeverPrintsThem(t *testing.T) {
	t.Parallel()
	srv := fakeJoin(t)
	dir := filepath.Join(t.TempDir(), "cfg")
	out, errs, code := runCLI(t, dir, "join", "cmi_token", "--server", srv.URL, "--name", "Ada")
	if code != 0 {
		t.Fatalf("join: exit %d: %s", code, errs)
	}
	id, err := peer.Home{Dir: dir}.Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"cm_SECRETSECRETSECRET", id.SecretKeyHex(), id.SecretKeyHex()[:64]} {
		if strings.Contains(out+errs, secret) {
			t.Errorf("join printed a secret: %q", out+errs)
		}
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %v (%v), want 0700", st.Mode().Perm(), err)
	}
	for _, f := range []string{"config.json", "identity.key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v (%v), want 0600", f, st.Mode().Perm(), err)
		}
	}
	// A second join keeps the identity; list --json never shows the key.
	if _, errs, code := runCLI(t, dir, "join", "http://"+strings.TrimPrefix(srv.URL, "http://")+"/join?token=cmi_2", "--name", "ada"); code != 0 {
		t.Fatalf("second join: %s", errs)
	}
	id2, _ := peer.Home{Dir: dir}.Identity()
	if id2.PublicKeyHex() != id.PublicKeyHex() {
		t.Error("a second join made a new identity")
	}
	out, _, code = runCLI(t, dir, "list", "--json")
	if code != 0 || strings.Contains(out, "SECRET") {
		t.Fatalf("list --json (exit %d): %s", code, out)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[0]), &v); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"default", "displayName", "id", "joinedAt", "memberId", "name", "pubkey", "server", "slug"}
	if !slices.Equal(keys, want) {
		t.Errorf("list --json fields %v, want %v", keys, want)
	}
	if v["displayName"] != "ada" || v["default"] != true {
		t.Errorf("list --json: %v", v)
	}
}

func TestRefusalsExitTwoAndNetworkErrorsThree(t *testing.T) {
	t.Parallel()
	srv := fakeJoin(t)
	_, errs, code := runCLI(t, t.TempDir(), "join", "bad", "--server", srv.URL, "--name", "ada")
	if code != ExitRefused || !strings.Contains(errs, "the invite expired") || !strings.Contains(errs, "ask for a new one") {
		t.Errorf("refused join: exit %d, stderr %q", code, errs)
	}
	dir := t.TempDir()
	if _, errs, code := runCLI(t, dir, "join", "cmi_ok", "--server", srv.URL, "--name", "ada"); code != 0 {
		t.Fatal(errs)
	}
	_, errs, code = runCLI(t, dir, "topic", "history", "nope")
	if code != ExitRefused || !strings.Contains(errs, "claudemesh topic list") {
		t.Errorf("unknown topic: exit %d, stderr %q", code, errs)
	}
	srv.Close()
	_, errs, code = runCLI(t, dir, "topic", "list")
	if code != ExitNetwork || !strings.Contains(errs, "cannot reach the broker") {
		t.Errorf("broker down: exit %d, stderr %q", code, errs)
	}
}

func TestMessageJSONShape(t *testing.T) {
	t.Parallel()
	key, _ := meshcrypto.NewTopicKey()
	ct, nonce, _ := meshcrypto.EncryptV2(key, []byte("hi @bob"))
	m := client.Message{Seq: 7, Topic: "ops", SenderDisplayName: "ada", BodyVersion: client.MessageBodyVersionN2, Ciphertext: ct, Nonce: nonce}
	cases := []struct {
		name    string
		m       client.Message
		haveKey bool
		want    map[string]any
	}{
		{"v2 with key", m, true, map[string]any{"text": "hi @bob", "pending": false, "plaintext": false}},
		{"v2 without key", m, false, map[string]any{"text": nil, "pending": true, "plaintext": false}},
		{"v1", client.Message{Seq: 8, Topic: "ops", BodyVersion: client.MessageBodyVersionN1, Ciphertext: meshcrypto.EncodeV1("plain")}, false,
			map[string]any{"text": "plain", "pending": false, "plaintext": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			keys := func(epoch int) ([meshcrypto.TopicKeySize]byte, bool) { return key, tc.haveKey && epoch == 1 }
			if err := writeJSON(&buf, viewMessage(&tc.m, peer.OpenMessage(&tc.m, keys))); err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"seq", "id", "topic", "from", "fromMemberId", "createdAt", "bodyVersion", "keyEpoch", "text", "plaintext", "pending", "undecryptable", "replyToId"} {
				if _, ok := got[f]; !ok {
					t.Errorf("field %q missing from %s", f, buf.String())
				}
			}
			for k, w := range tc.want {
				if got[k] != w {
					t.Errorf("%s = %v, want %v", k, got[k], w)
				}
			}
		})
	}
}

func TestParseInvite(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, server, token string }{
		{"cmi_abc", "", "cmi_abc"},
		{"http://b.example:7900/join?token=cmi_abc", "http://b.example:7900", "cmi_abc"},
		{"https://b.example/join/cmi_abc", "https://b.example", "cmi_abc"},
	}
	for _, tc := range cases {
		s, tok, err := parseInvite(tc.in)
		if err != nil || s != tc.server || tok != tc.token {
			t.Errorf("parseInvite(%q) = %q, %q, %v", tc.in, s, tok, err)
		}
	}
}

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{time.Second: "just now", 30 * time.Second: "30s ago", 5 * time.Minute: "5m ago", 3 * time.Hour: "3h ago", 72 * time.Hour: "3d ago"} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
}

// TestVersionAndBareGroups: `--version` prints what `version` prints, and
// a command group named alone shows its help and succeeds.
func TestVersionAndBareGroups(t *testing.T) {
	t.Parallel()
	v, _, code := runCLI(t, t.TempDir(), "version")
	vf, _, codef := runCLI(t, t.TempDir(), "--version")
	if code != 0 || codef != 0 || v != vf || !strings.HasPrefix(v, "claudemesh ") {
		t.Errorf("version %q (exit %d), --version %q (exit %d)", v, code, vf, codef)
	}
	for _, group := range []string{"topic", "status", "hook"} {
		out, errs, code := runCLI(t, t.TempDir(), group)
		if code != 0 || !strings.Contains(out, "Available Commands:") {
			t.Errorf("%s alone: exit %d, stdout %q, stderr %q", group, code, out, errs)
		}
	}
}
