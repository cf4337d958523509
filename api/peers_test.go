package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/wsproto"
	"net/http"
	"strings"
	"testing"
	"time"
)

type peerOut struct {
	MemberID     string `json:"memberId"`
	SessionID    string `json:"sessionId"`
	Status       string `json:"status"`
	StatusSource string `json:"statusSource"`
	Summary      string `json:"summary"`
	Pid          *int   `json:"pid"`
	Cwd          string `json:"cwd"`
}

type peerPage struct {
	Items      []peerOut `json:"items"`
	NextCursor *string   `json:"nextCursor"`
	HasMore    bool      `json:"hasMore"`
}

type hookOut struct {
	Result  string   `json:"result"`
	Session *peerOut `json:"session"`
}

// TestHookSetStatus: the hook needs the member's own credential with
// state_write; nobody else's call changes a session; the member's own
// call applies the status-source rules, shows in GET /v1/peers, reaches
// SSE /stream as a presence event, and releases held direct messages when
// it turns the session idle.
func TestHookSetStatus(t *testing.T) {
	eachEnvWith(t, nil, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Hooks")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 3})
		alice, bob, eve := e.joinWithIdentity(inv, "alice"), e.joinWithIdentity(inv, "bob"), e.joinWithIdentity(inv, "eve")
		pid, cwd := 4242, "/home/bob/app"
		cb := e.dialPeer(bob, m.Mesh.ID, "cc-1", func(o *wsclient.HelloOptions) { o.Pid, o.Cwd = &pid, &cwd })
		ca := e.dialPeer(alice, m.Mesh.ID, "cc-2")
		working := map[string]any{"status": "working", "pid": pid, "cwd": cwd, "summary": "tests"}

		bobStatus := func() peerOut {
			t.Helper()
			var page peerPage
			e.must("GET", "/v1/peers", alice.APIKey.Key, nil, http.StatusOK, &page)
			for _, p := range page.Items {
				if p.MemberID == bob.Member.ID {
					return p
				}
			}
			t.Fatalf("bob not in /v1/peers: %+v", page)
			return peerOut{}
		}

		e.wantProblem("POST", "/hook/set-status", "", working, http.StatusUnauthorized, "unauthorized")
		var out hookOut
		e.must("POST", "/hook/set-status", eve.APIKey.Key, working, http.StatusOK, &out)
		if out.Result != "stashed" || out.Session != nil {
			t.Errorf("eve's hook with bob's pid and cwd = %+v", out)
		}
		var readOnly struct {
			Key string `json:"key"`
		}
		e.must("POST", "/v1/api-keys", bob.APIKey.Key, map[string]any{"capabilities": []string{"read"}}, http.StatusCreated, &readOnly)
		e.wantProblem("POST", "/hook/set-status", readOnly.Key, working, http.StatusForbidden, "capability_required")
		if s := bobStatus(); s.Status != "idle" {
			t.Fatalf("bob's session changed by calls that must change nothing: %+v", s)
		}
		e.wantProblem("POST", "/hook/set-status", bob.APIKey.Key, map[string]any{"status": "asleep", "pid": 0, "cwd": ""}, http.StatusUnprocessableEntity, "validation_failed")
		e.wantProblem("POST", "/hook/set-status", bob.APIKey.Key, map[string]any{"status": "idle", "pid": 1, "cwd": "/", "extra": 1}, http.StatusBadRequest, "malformed_json")

		sse := openStream(t, e, alice.APIKey.Key)
		e.must("POST", "/hook/set-status", bob.APIKey.Key, working, http.StatusOK, &out)
		if out.Result != "applied" || out.Session.Status != "working" || out.Session.StatusSource != "hook" || out.Session.SessionID != "cc-1" {
			t.Fatalf("bob's hook = %+v", out)
		}
		if s := bobStatus(); s.Status != "working" || s.Summary != "tests" || s.Pid == nil || *s.Pid != pid || s.Cwd != cwd {
			t.Fatalf("/v1/peers after the hook: %+v", s)
		}
		for {
			var v peerOut
			if err := json.Unmarshal(sse.next(t, "presence"), &v); err != nil {
				t.Fatal(err)
			}
			if v.MemberID == bob.Member.ID && v.Status == "working" {
				break
			}
		}

		// Held while working, released by the hook's idle.
		held := wsSend(t, ca, sealFor(t, alice, bob, "after your tests", "next", ""))
		urgent := wsSend(t, ca, sealFor(t, alice, bob, "prod is down", "now", ""))
		if p := wsNext(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(urgent).IDs[0] {
			t.Fatalf("a working session got %s before the urgent message", peertest.View(p).ID)
		}
		e.must("POST", "/hook/set-status", bob.APIKey.Key, map[string]any{"status": "idle", "pid": pid, "cwd": cwd}, http.StatusOK, &out)
		if p := wsNext(t, cb, wsproto.TypePush); peertest.View(p).ID != peertest.View(held).IDs[0] {
			t.Fatalf("idle released %s, want the held message", peertest.View(p).ID)
		}

		// dnd set by bob himself is never cleared by a hook.
		wsSend(t, cb, map[string]any{"type": "set_status", "status": "dnd"})
		e.must("POST", "/hook/set-status", bob.APIKey.Key, working, http.StatusOK, &out)
		if out.Result != "unchanged" || out.Session.Status != "dnd" {
			t.Errorf("hook over dnd = %+v", out)
		}

		// Paging, and the per-session rate limit.
		var page peerPage
		e.must("GET", "/v1/peers?limit=1", alice.APIKey.Key, nil, http.StatusOK, &page)
		if len(page.Items) != 1 || !page.HasMore || page.NextCursor == nil {
			t.Fatalf("first page = %+v", page)
		}
		e.must("GET", "/v1/peers?limit=1&cursor="+*page.NextCursor, alice.APIKey.Key, nil, http.StatusOK, &page)
		if len(page.Items) != 1 || page.HasMore {
			t.Fatalf("second page = %+v", page)
		}
		limited := false
		for range 40 {
			status, _, h := e.call("POST", "/hook/set-status", bob.APIKey.Key, working)
			if status == http.StatusTooManyRequests {
				limited = h.Get("Retry-After") != ""
				break
			}
		}
		if !limited {
			t.Error("40 hook calls in a burst were never rate limited")
		}
	})
}

// sseReader reads raw server-sent events.
type sseReader struct {
	events chan [2]string
}

func openStream(t *testing.T, e *env, key string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+"/stream", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r := &sseReader{events: make(chan [2]string, 256)}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var kind string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				r.events <- [2]string{kind, strings.TrimPrefix(line, "data: ")}
			}
		}
	}()
	r.next(t, "ready")
	return r
}

func (r *sseReader) next(t *testing.T, kind string) []byte {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-r.events:
			if ev[0] == kind {
				return []byte(ev[1])
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}
