package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/stream"
)

// follower is an r3labs SSE client reading a stream into a channel.
type follower struct {
	events chan *sse.Event
	done   chan error
	cancel context.CancelFunc
}

// follow opens a stream; lastID "" means none. The client does not
// reconnect by itself, so a server-side end is observable on done.
func (e *env) follow(path, token, lastID string) *follower {
	c := sse.NewClient(e.base+path, sse.ClientMaxBufferSize(1<<20))
	if token != "" {
		c.Headers["Authorization"] = "Bearer " + token
	}
	if lastID != "" {
		c.LastEventID.Store([]byte(lastID))
	}
	c.ReconnectStrategy = &backoff.StopBackOff{}
	c.Connection = e.client // validates status and headers against openapi.yaml
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{events: make(chan *sse.Event, 20000), done: make(chan error, 1), cancel: cancel}
	go func() {
		f.done <- c.SubscribeRawWithContext(ctx, func(m *sse.Event) {
			cp := &sse.Event{ID: bytes.Clone(m.ID), Event: bytes.Clone(m.Event), Data: bytes.Clone(m.Data)}
			f.events <- cp
		})
	}()
	return f
}

// next waits for the next event of the given kind.
func (f *follower) next(t testing.TB, kind string) *sse.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-f.events:
			if string(ev.Event) == kind {
				return ev
			}
		case err := <-f.done:
			// Every event the stream delivered is in f.events before done
			// is sent; select picks among ready cases at random, so look
			// there before calling the stream ended without one.
			for {
				select {
				case ev := <-f.events:
					if string(ev.Event) == kind {
						f.done <- err // still ended, for a later next
						return ev
					}
					continue
				default:
				}
				break
			}
			t.Fatalf("stream ended waiting for %s: %v", kind, err)
		case <-timeout:
			t.Fatalf("no %s event within 20 s", kind)
		}
	}
}

func (f *follower) seq(t testing.TB) int64 {
	t.Helper()
	ev := f.next(t, "message")
	var m struct {
		Seq         int64 `json:"seq"`
		BodyVersion int   `json:"bodyVersion"`
	}
	if err := json.Unmarshal(ev.Data, &m); err != nil || m.BodyVersion == 0 || strconv.FormatInt(m.Seq, 10) != string(ev.ID) {
		t.Fatalf("message event %s / id %s: %v", ev.Data, ev.ID, err)
	}
	return m.Seq
}

// poster posts over plain HTTP (safe from any goroutine).
func (e *env) post(key, topic string, body []byte) (int64, error) {
	raw, _ := json.Marshal(map[string]any{"topic": topic, "bodyVersion": 1, "ciphertext": base64.StdEncoding.EncodeToString(body)})
	req, _ := http.NewRequest("POST", e.base+"/v1/messages", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var m struct {
		Seq int64 `json:"seq"`
	}
	if resp.StatusCode != http.StatusCreated {
		return 0, fmt.Errorf("post: status %d", resp.StatusCode)
	}
	return m.Seq, json.NewDecoder(resp.Body).Decode(&m)
}

// TestStreamResumeWhilePosting: a client reads part of a topic, drops, and
// resumes with Last-Event-ID while 1,000 messages are posted concurrently;
// it sees every seq exactly once, in order.
func TestStreamResumeWhilePosting(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Live")
		key := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "poster").APIKey.Key

		const writers, each = 4, 250
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					if _, err := e.post(key, "general", fmt.Appendf(nil, "w%d-%d", w, i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		var seen []int64
		f := e.follow("/v1/topics/general/stream?since=0", key, "")
		for len(seen) < 300 {
			seen = append(seen, f.seq(t))
		}
		f.cancel()
		last := seen[len(seen)-1]
		g := e.follow("/v1/topics/general/stream", key, strconv.FormatInt(last, 10))
		defer g.cancel()
		for len(seen) < writers*each {
			seen = append(seen, g.seq(t))
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for i, s := range seen {
			if s != int64(i+1) {
				t.Fatalf("event %d has seq %d: lost, doubled or out of order", i, s)
			}
		}
		// Nothing more arrives: no duplicates after the last.
		select {
		case ev := <-g.events:
			if string(ev.Event) == "message" {
				t.Errorf("extra event after all %d: %s", writers*each, ev.ID)
			}
		case <-time.After(200 * time.Millisecond):
		}
	})
}

func TestStreamsHidePrivateTopics(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Private")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		alice, eve := e.join(inv, "alice"), e.join(inv, "eve")
		e.must("POST", "/v1/topics", alice.APIKey.Key, map[string]string{"name": "secret", "visibility": "private"}, http.StatusCreated, nil)
		e.wantProblem("GET", "/v1/topics/secret/stream", eve.APIKey.Key, nil, http.StatusNotFound, "topic_not_found")
		e.wantProblem("GET", "/stream?topics=general,secret", eve.APIKey.Key, nil, http.StatusNotFound, "topic_not_found")

		all := e.follow("/stream", eve.APIKey.Key, "")
		defer all.cancel()
		all.next(t, "ready")
		if _, err := e.post(alice.APIKey.Key, "secret", []byte("classified")); err != nil {
			t.Fatal(err)
		}
		pub, err := e.post(alice.APIKey.Key, "general", []byte("hello @eve"))
		if err != nil {
			t.Fatal(err)
		}
		if got := all.seq(t); got != pub {
			t.Errorf("eve's /stream delivered seq %d first, want the public %d (the private one must never come)", got, pub)
		}
		note := all.next(t, "notification")
		if !strings.Contains(string(note.Data), `"topic":"general"`) {
			t.Errorf("notification = %s", note.Data)
		}
		// Resume on /stream never replays the private topic either.
		again := e.follow("/stream?since=0", eve.APIKey.Key, "")
		defer again.cancel()
		if got := again.seq(t); got != pub {
			t.Errorf("replay delivered seq %d, want %d", got, pub)
		}
	})
}

func TestStreamEndsWhenKeyIsRevoked(t *testing.T) {
	for _, d := range []models.Dialect{models.SQLite, models.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			e := newEnv(t, d, func(c *api.Config) { c.StreamRevalidate = 50 * time.Millisecond })
			owner := e.signup()
			m := e.createMesh(owner.AccessToken, "Revoke")
			peer := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")
			f := e.follow("/v1/topics/general/stream", peer.APIKey.Key, "")
			defer f.cancel()
			f.next(t, "ready")
			e.must("DELETE", "/v1/api-keys/"+peer.APIKey.ID, peer.APIKey.Key, nil, http.StatusNoContent, nil)
			f.next(t, "end")
			select {
			case <-f.done:
			case <-time.After(10 * time.Second):
				t.Fatal("stream still open 10 s after its key was revoked")
			}
		})
	}
}

func TestStreamTokenInQuery(t *testing.T) {
	e := newEnv(t, models.SQLite, nil)
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Browser")
	peer := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")
	var st struct {
		Token string `json:"token"`
	}
	e.must("POST", "/v1/stream/token", peer.APIKey.Key, nil, http.StatusCreated, &st)
	f := e.follow("/stream?token="+st.Token, "", "")
	defer f.cancel()
	f.next(t, "ready")
	seq, err := e.post(peer.APIKey.Key, "general", []byte("via token"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != seq {
		t.Errorf("got seq %d, want %d", got, seq)
	}
	// A stream token opens streams and nothing else.
	e.wantProblem("GET", "/v1/members", st.Token, nil, http.StatusUnauthorized, "invalid_token")
	// Expired and forged stream tokens are refused.
	expired := jwt.MapClaims{"typ": "stream", "sub": peer.Member.ID, "mesh": m.Mesh.ID, "caps": []string{"read"},
		"iss": "claudemesh-broker", "aud": "claudemesh", "iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(-time.Minute).Unix()}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, expired).SignedString(testSecret)
	e.wantProblem("GET", "/stream?token="+tok, "", nil, http.StatusUnauthorized, "token_expired")
	e.wantProblem("GET", "/stream?token=garbage", "", nil, http.StatusUnauthorized, "invalid_token")
	// A stream token of a since-revoked key no longer connects.
	e.must("DELETE", "/v1/api-keys/"+peer.APIKey.ID, peer.APIKey.Key, nil, http.StatusNoContent, nil)
	e.wantProblem("GET", "/stream?token="+st.Token, "", nil, http.StatusUnauthorized, "credential_revoked")
}

// TestStalledClientIsCutOff: a client that stops reading is disconnected
// once its queue overflows; a fast client on the same topic keeps receiving
// everything.
func TestStalledClientIsCutOff(t *testing.T) {
	e := newEnv(t, models.Postgres, func(c *api.Config) { c.StreamQueueEvents = 16 })
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Stall")
	key := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer").APIKey.Key

	// The stalled client: sends the request, reads the headers, then never reads again.
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/topics/general/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", key)
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("stalled client's status line %q, %v", line, err)
	}
	fast := e.follow("/v1/topics/general/stream", key, "")
	defer fast.cancel()
	fast.next(t, "ready")

	// 250 frames of ~33 KiB (8 MiB) outgrow the loopback socket buffers of a
	// reader that never reads (about 4 MiB here).
	const n = 250
	body := bytes.Repeat([]byte("x"), 24<<10)
	for i := range n {
		if _, err := e.post(key, "general", body); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		fast.seq(t)
	}
	_, metrics, _ := e.call("GET", "/metrics", "", nil)
	if !bytes.Contains(metrics, []byte("claudemesh_stream_slow_disconnects_total 1")) {
		t.Errorf("no slow-consumer disconnect recorded:\n%s", grepLines(metrics, "claudemesh_stream"))
	}
}

func grepLines(b []byte, sub string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestTwoBrokersOverNATS: a client on broker 1 receives what was posted to
// broker 2; when broker 2 loses NATS, its messages still reach the client
// through the gap fill once the next message lands on broker 1, and through
// the reconciler when nothing else happens.
func TestTwoBrokersOverNATS(t *testing.T) {
	natsURL := os.Getenv("CLAUDEMESH_TEST_NATS")
	if natsURL == "" {
		natsURL = "nats://127.0.0.1:4222"
	}
	if os.Getenv("CLAUDEMESH_TEST_SKIP_NATS") == "1" {
		t.Skip("NATS skipped: CLAUDEMESH_TEST_SKIP_NATS=1")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(natsURL, "nats://"), 2*time.Second); err != nil {
		t.Fatalf("NATS at %s is unreachable (%v); start it or set CLAUDEMESH_TEST_SKIP_NATS=1", natsURL, err)
	} else {
		c.Close()
	}
	b1, b2 := newCluster(t, natsURL)
	owner := b1.signup()
	m := b1.createMesh(owner.AccessToken, "Cluster")
	key := b1.join(b1.invite(owner.AccessToken, m.Mesh.ID, nil), "peer").APIKey.Key

	f := b1.follow("/v1/topics/general/stream", key, "")
	defer f.cancel()
	f.next(t, "ready")
	s1, err := b2.post(key, "general", []byte("from broker 2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != s1 {
		t.Fatalf("broker 1 client got seq %d, want %d from broker 2", got, s1)
	}
	// Presence changes on broker 2 reach /stream subscribers on broker 1.
	all := b1.follow("/stream", key, "")
	defer all.cancel()
	all.next(t, "ready")
	b2.srv.Hub().Publish(stream.PresenceEvent(m.Mesh.ID, map[string]string{"status": "working"}, time.Now()))
	if ev := all.next(t, "presence"); !strings.Contains(string(ev.Data), "working") {
		t.Errorf("presence from broker 2 = %s", ev.Data)
	}

	b2.srv.Close() // broker 2 loses NATS
	s2, err := b2.post(key, "general", []byte("lost on the bus"))
	if err != nil {
		t.Fatal(err)
	}
	s3, err := b1.post(key, "general", []byte("lands on broker 1"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := f.seq(t), f.seq(t); a != s2 || b != s3 {
		t.Fatalf("after the outage got %d, %d; want %d, %d", a, b, s2, s3)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b1.srv.Hub().RunReconciler(ctx, 50*time.Millisecond)
	s4, err := b2.post(key, "general", []byte("repaired by the reconciler"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != s4 {
		t.Fatalf("reconciler delivered %d, want %d", got, s4)
	}
}

func TestStreamEndsWhenTopicAccessIsLost(t *testing.T) {
	e := newEnv(t, models.Postgres, func(c *api.Config) { c.StreamRevalidate = 50 * time.Millisecond })
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Access")
	inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
	lead, bob := e.join(inv, "lead"), e.join(inv, "bob")
	e.must("POST", "/v1/topics", lead.APIKey.Key, map[string]string{"name": "core", "visibility": "private"}, http.StatusCreated, nil)
	e.must("POST", "/v1/topics/core/members", lead.APIKey.Key, map[string]string{"memberId": bob.Member.ID}, http.StatusCreated, nil)
	one := e.follow("/v1/topics/core/stream", bob.APIKey.Key, "")
	defer one.cancel()
	one.next(t, "ready")
	named := e.follow("/stream?topics=core", bob.APIKey.Key, "")
	defer named.cancel()
	named.next(t, "ready")
	e.must("DELETE", "/v1/topics/core/members/"+bob.Member.ID, lead.APIKey.Key, nil, http.StatusNoContent, nil)
	one.next(t, "end")
	named.next(t, "end")
}

func TestStreamEndsWhenMemberIsRevoked(t *testing.T) {
	e := newEnv(t, models.SQLite, func(c *api.Config) { c.StreamRevalidate = 50 * time.Millisecond })
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Gone")
	peer := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")
	f := e.follow("/stream", peer.APIKey.Key, "")
	defer f.cancel()
	f.next(t, "ready")
	e.must("DELETE", "/v1/members/"+peer.Member.ID, e.memberToken(owner.AccessToken, m.Mesh.ID), nil, http.StatusNoContent, nil)
	f.next(t, "end")
}

// TestNATSStoppedMidStream: two brokers on an embedded NATS server that is
// shut down mid-test. Messages posted to broker 2 afterwards still reach
// broker 1's client: through the gap fill when the next message lands on
// broker 1, and through the reconciler when nothing follows.
func TestNATSStoppedMidStream(t *testing.T) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("embedded NATS did not start")
	}
	defer ns.Shutdown()
	b1, b2 := newCluster(t, ns.ClientURL())
	owner := b1.signup()
	m := b1.createMesh(owner.AccessToken, "Outage")
	key := b1.join(b1.invite(owner.AccessToken, m.Mesh.ID, nil), "peer").APIKey.Key
	f := b1.follow("/v1/topics/general/stream", key, "")
	defer f.cancel()
	f.next(t, "ready")
	s1, err := b2.post(key, "general", []byte("over the bus"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != s1 {
		t.Fatalf("got %d, want %d over NATS", got, s1)
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	s2, err := b2.post(key, "general", []byte("bus is down"))
	if err != nil {
		t.Fatal(err)
	}
	s3, err := b1.post(key, "general", []byte("next one lands on broker 1"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := f.seq(t), f.seq(t); a != s2 || b != s3 {
		t.Fatalf("after NATS stopped got %d, %d; want %d, %d", a, b, s2, s3)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b1.srv.Hub().RunReconciler(ctx, 50*time.Millisecond)
	s4, err := b2.post(key, "general", []byte("nothing follows this one"))
	if err != nil {
		t.Fatal(err)
	}
	if got := f.seq(t); got != s4 {
		t.Fatalf("reconciler delivered %d, want %d", got, s4)
	}
}
