package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/claudemesh/claudemesh-go/api"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// openStream opens a stream through the contract-checking client and
// returns its status; a 200 stream stays open until the test ends or
// closeIt is called. A refusal's problem code is returned too.
func (e *env) openStream(t *testing.T, path, token string) (status int, code string, closeIt func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var p struct {
			Code string `json:"code"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&p)
		resp.Body.Close()
		cancel()
		return resp.StatusCode, p.Code, func() {}
	}
	closeIt = func() { cancel(); resp.Body.Close() }
	t.Cleanup(closeIt)
	return resp.StatusCode, "", closeIt
}

// TestStreamCapPerCredential: one credential holds at most
// STREAM_MAX_PER_CREDENTIAL streams, over both stream routes and the stream
// tokens minted from it; one more is 429 too_many_streams. Other
// credentials are not affected, and a stream that ends (closed by its
// client, then resumed, again and again) gives its slot back.
func TestStreamCapPerCredential(t *testing.T) {
	eachEnvWith(t, func(c *api.Config) { c.StreamsPerCredential, c.StreamHeartbeat = 2, 20*time.Millisecond }, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Caps")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		key, other := e.join(inv, "a").APIKey.Key, e.join(inv, "b").APIKey.Key

		_, _, closeFirst := e.openStream(t, "/stream", key)
		if st, _, _ := e.openStream(t, "/v1/topics/general/stream", key); st != http.StatusOK {
			t.Fatalf("second stream = %d", st)
		}
		if st, code, _ := e.openStream(t, "/stream", key); st != http.StatusTooManyRequests || code != "too_many_streams" {
			t.Fatalf("third stream = %d %s, want 429 too_many_streams", st, code)
		}
		var tok struct {
			Token string `json:"token"`
		}
		e.must("POST", "/v1/stream/token", key, nil, http.StatusCreated, &tok)
		if st, code, _ := e.openStream(t, "/stream?token="+url.QueryEscape(tok.Token), ""); st != http.StatusTooManyRequests || code != "too_many_streams" {
			t.Fatalf("stream token of a full key = %d %s, want 429", st, code)
		}
		if st, _, _ := e.openStream(t, "/stream", other); st != http.StatusOK {
			t.Fatalf("another credential's stream = %d", st)
		}

		// Closing a stream frees its slot (the broker notices at its next
		// heartbeat); the resumed stream takes it, and so on.
		closeIt := closeFirst
		for round := range 5 {
			closeIt()
			deadline := time.Now().Add(10 * time.Second)
			for {
				st, _, c := e.openStream(t, "/stream?since=0", key)
				if st == http.StatusOK {
					closeIt = c
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("round %d: the closed stream's slot was never freed (%d)", round, st)
				}
				time.Sleep(20 * time.Millisecond) // retrying as a client would
			}
			if st, _, _ := e.openStream(t, "/stream", key); st != http.StatusTooManyRequests {
				t.Fatalf("round %d: a third stream was let in (%d)", round, st)
			}
		}
	})
}

// TestPeerSessionCapPerMember: a member holds at most
// WS_MAX_SESSIONS_PER_MEMBER peer sessions on a broker; one more is closed
// with 4430 too_many_sessions and leaves no session behind. A session
// reconnecting takes its own place over; another member is not affected;
// a session that ends gives its place back.
func TestPeerSessionCapPerMember(t *testing.T) {
	eachEnvWith(t, func(c *api.Config) { c.WSSessionsPerMember = 2 }, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Sessions")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		alice, bob := e.joinWithIdentity(inv, "alice"), e.joinWithIdentity(inv, "bob")
		dial := func(p cryptoPeer, session string) (*wsclient.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := wsclient.Dial(ctx, e.wsURL(), nil, wsclient.HelloOptions{Identity: p.id, MeshID: m.Mesh.ID, MemberID: p.Member.ID, SessionID: session})
			if c != nil {
				t.Cleanup(func() { _ = c.Socket().CloseNow() })
			}
			return c, err
		}
		e.dialPeer(alice, m.Mesh.ID, "s1")
		s2 := e.dialPeer(alice, m.Mesh.ID, "s2")
		_, err := dial(alice, "s3")
		if code, reason := wsclient.CloseStatus(err); code != wsproto.CloseTooManySessions || !strings.HasPrefix(reason, "too_many_sessions") {
			t.Fatalf("third session closed with %d %q (%v)", code, reason, err)
		}
		if code := wsproto.CloseTooManySessions; code != 4430 {
			t.Fatalf("the documented close code is 4430, not %d", code)
		}
		e.dialPeer(alice, m.Mesh.ID, "s1") // a reconnect of s1 is not a third session
		e.dialPeer(bob, m.Mesh.ID, "b1")

		var peers struct {
			Peers []struct {
				SessionID string `json:"sessionId"`
			} `json:"peers"`
		}
		e.must("GET", "/v1/peers", bob.APIKey.Key, nil, http.StatusOK, &peers)
		for _, p := range peers.Peers {
			if p.SessionID == "s3" {
				t.Fatal("the refused session was recorded")
			}
		}

		_ = s2.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := dial(alice, "s3")
			if err == nil {
				break
			}
			if code, _ := wsclient.CloseStatus(err); code != wsproto.CloseTooManySessions || time.Now().After(deadline) {
				t.Fatalf("after s2 left, s3 = %v", err)
			}
			time.Sleep(20 * time.Millisecond) // the broker records s2's end
		}
	})
}

// TestStreamTypes: /stream?types= sends only the named event types (and
// replays messages only when they are wanted); an unknown type is 400.
func TestStreamTypes(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Types")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		key := e.join(inv, "watcher").APIKey.Key
		peer := e.joinWithIdentity(inv, "peer")
		e.wantProblem("GET", "/stream?types=message,typing", key, nil, http.StatusBadRequest, "invalid_query")

		s1, err := e.post(key, "general", []byte("before"))
		if err != nil {
			t.Fatal(err)
		}
		all := e.follow("/stream", key, "")
		defer all.cancel()
		all.next(t, "ready")
		// Presence only, with a resume point that would replay s1 if
		// messages were wanted.
		pres := e.follow("/stream?types=presence", key, "0")
		defer pres.cancel()
		pres.next(t, "ready")
		msgs := e.follow("/stream?types=message,notification", key, "")
		defer msgs.cancel()
		msgs.next(t, "ready")

		c := e.dialPeer(peer, m.Mesh.ID, "p1")
		all.next(t, "presence")
		if ev := <-pres.events; string(ev.Event) != "presence" {
			t.Fatalf("presence-only stream's first event = %s %s (s1 = %d)", ev.Event, ev.Data, s1)
		}
		_ = c.Close()
		s2, err := e.post(key, "general", []byte("after"))
		if err != nil {
			t.Fatal(err)
		}
		for {
			ev := msgs.nextAnyKind(t)
			if k := string(ev.Event); k == "message" {
				if string(ev.ID) != fmt.Sprint(s2) {
					t.Fatalf("message-only stream got message %s, want %d", ev.ID, s2)
				}
				break
			} else if k != "ready" {
				t.Fatalf("message-only stream got %s: %s", k, ev.Data)
			}
		}
	})
}

// nextAnyKind waits for the next event, whatever its kind.
func (f *follower) nextAnyKind(t testing.TB) *sse.Event {
	t.Helper()
	select {
	case ev := <-f.events:
		return ev
	case err := <-f.done:
		t.Fatalf("stream ended: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20 s")
	}
	return nil
}

// TestSlowConsumerGetsEnd (issue 18): a subscriber that stops reading is
// cut off once STREAM_QUEUE_EVENTS events wait for it behind a full socket.
// When it reads again, the stream's last event is `end` with reason
// slow_consumer, reconnect true and lastEventId the seq of the last
// message it was sent, not a bare EOF; resuming from there loses nothing.
func TestSlowConsumerGetsEnd(t *testing.T) {
	eachEnvWith(t, func(c *api.Config) { c.StreamQueueEvents = 8 }, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Slow")
		key := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "slow").APIKey.Key
		u, _ := url.Parse(e.base)
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /v1/topics/general/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", u.Host, key)
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(line, "event: ready") {
				break
			}
		}
		// The reader stalls; posts go on until the broker cuts it off.
		body := bytes.Repeat([]byte("x"), 32<<10)
		var last int64
		cutoffs := func() float64 { return metric(t, e, "claudemesh_stream_slow_disconnects_total") }
		for i := 0; cutoffs() == 0; i++ {
			if i == 5000 {
				t.Fatal("5,000 posts and the stalled reader is still subscribed")
			}
			for range 10 {
				if last, err = e.post(key, "general", body); err != nil {
					t.Fatal(err)
				}
			}
		}
		t.Logf("cut off after %d posts", last)
		// It reads again: everything the socket held, then the end event.
		var events []string
		var lastID string
		for {
			ev, id, data, err := readEvent(br)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
			if ev == "message" {
				lastID = id
			}
			if ev == "end" {
				var end struct {
					Reason      string `json:"reason"`
					Reconnect   bool   `json:"reconnect"`
					LastEventID string `json:"lastEventId"`
				}
				if err := json.Unmarshal([]byte(data), &end); err != nil {
					t.Fatal(err)
				}
				if end.Reason != "slow_consumer" || !end.Reconnect || end.LastEventID != lastID {
					t.Fatalf("end = %+v, want slow_consumer, reconnect, lastEventId %s", end, lastID)
				}
			}
		}
		if len(events) == 0 || events[len(events)-1] != "end" {
			t.Fatalf("the cut-off stream ended without an end event (%d events, last %v)", len(events), events[max(0, len(events)-1):])
		}
		// Resuming from lastEventId delivers the rest, up to the last post.
		f := e.follow("/v1/topics/general/stream", key, lastID)
		defer f.cancel()
		f.next(t, "ready")
		seq := f.seq(t)
		for seq != last {
			seq = f.seq(t)
		}
	})
}

// readEvent reads one SSE event (comments skipped).
func readEvent(br *bufio.Reader) (event, id, data string, err error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || (errors.Is(err, io.EOF) && line != "") {
				return "", "", "", io.EOF // a frame cut short: dropped, as EventSource does
			}
			return "", "", "", err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "":
			if event != "" || data != "" {
				return event, id, data, nil
			}
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		}
	}
}

// metric reads one counter or gauge from the broker's /metrics.
func metric(t *testing.T, e *env, name string) float64 {
	t.Helper()
	resp, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				t.Fatalf("%s = %q", name, f[1])
			}
			return v
		}
	}
	return 0
}
