package deploy

import (
	"context"
	"encoding/json"
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

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/models/storetest"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// rollingShape is how much traffic and how many restarts a run has. CI runs
// the short one; CLAUDEMESH_ROLLING_ROUNDS=N repeats the three restarts N
// times for the figures in docs/RELIABILITY.md.
type rollingShape struct {
	posters, followers, dmPairs int
	rounds                      int
	acksPerPhase                int // acks every poster gets between two restarts
}

// TestRollingRestart runs two brokers on one fresh PostgreSQL database and
// NATS behind Caddy (deploy/Caddyfile, on loopback), with posters, SSE
// followers and /ws peers exchanging direct messages through Caddy, and
// restarts the brokers one at a time: SIGTERM, SIGTERM, then SIGKILL, per
// round. Every client retries the way the protocol says (a post or a send
// again with the same clientMessageId, a stream again with Last-Event-ID, a
// peer again after 1001). It counts what an operator cares about: posts
// acknowledged and then lost, gaps and duplicates in what followers saw,
// direct messages lost or delivered again after a confirmed ack, and the
// longest pause each kind of client saw.
func TestRollingRestart(t *testing.T) {
	caddyBin := needTool(t, "caddy", "apt-get install caddy")
	shape := rollingShape{posters: 4, followers: 2, dmPairs: 2, rounds: 1, acksPerPhase: 25}
	if n, err := strconv.Atoi(os.Getenv("CLAUDEMESH_ROLLING_ROUNDS")); err == nil && n > 0 {
		shape.rounds = n
	}
	natsURL := os.Getenv("CLAUDEMESH_TEST_NATS")
	if natsURL == "" {
		natsURL = "nats://127.0.0.1:4222"
	}
	dbURL := storetest.Database(t)
	bin := brokerBinary(t)

	// Two brokers on fixed loopback ports, restarted on the same ones.
	addrs := []string{freeAddr(t), freeAddr(t)}
	env := func(addr string) []string {
		return append(os.Environ(), "BROKER_ADDR="+addr, "DATABASE_URL="+dbURL, "NATS_URL="+natsURL,
			"TRUSTED_PROXIES=127.0.0.1", "JWT_SECRET=rolling-restart-test-secret-of-32-bytes!",
			"RATE_LIMIT_PER_SECOND=100000", "RATE_LIMIT_BURST=100000", "AUTH_RATE_LIMIT_PER_SECOND=100000",
			"AUTH_RATE_LIMIT_BURST=100000", "WS_SENDS_PER_SECOND=100000", "WS_SEND_BURST=100000", "LOG_LEVEL=warn")
	}
	brokers := make([]*proc, 2)
	start := func(i int) {
		cmd := exec.Command(bin, "serve")
		cmd.Env = env(addrs[i])
		brokers[i] = startProc(t, cmd)
	}
	// Both at once on the empty database: the migration lock at work.
	start(0)
	start(1)
	for i := range brokers {
		waitReady(t, brokers[i], "http://"+addrs[i]+"/ready")
	}

	caddyAddr := freeAddr(t)
	cdir := t.TempDir()
	ccmd := exec.Command(caddyBin, "run", "--adapter", "caddyfile", "--config", filepath.Join(repoRoot(t), "deploy/Caddyfile"))
	ccmd.Env = append(os.Environ(), "CLAUDEMESH_DOMAIN=http://"+caddyAddr, "CLAUDEMESH_UPSTREAMS="+addrs[0]+" "+addrs[1],
		"CADDY_ADMIN=off", "XDG_DATA_HOME="+cdir, "XDG_CONFIG_HOME="+cdir, "HOME="+cdir)
	caddy := startProc(t, ccmd)
	base := "http://" + caddyAddr
	waitReady(t, caddy, base+"/ready")

	a := newAPI(base)
	meshID, members := newMesh(t, a, shape.posters+shape.followers+2*shape.dmPairs)
	posters := members[:shape.posters]
	followers := members[shape.posters : shape.posters+shape.followers]
	dm := members[shape.posters+shape.followers:]

	pz := &pauses{last: map[string]time.Time{}, max: map[string]time.Duration{}}
	var (
		mu          sync.Mutex
		acked       = map[string]int64{} // post clientMessageId → seq
		ackCount    = make([]int, shape.posters)
		dmAcked     = map[string]string{} // DM clientMessageId → message id
		dmGot       = map[string]map[string]int{}
		dmConfirmed = map[string]bool{} // message ids whose ack the broker confirmed
		dmDupAfter  int                 // pushes of a message after its confirmed ack
		dmRedeliver int                 // pushes again before an ack was confirmed (at-least-once)
		gaps, dups  int
		followerMax = make([]int64, shape.followers)
		shutdownEnd int // SSE end events with server_shutdown
		restartWS   int // /ws closes with 1001 shutting_down
		unexpected  []string
	)
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(unexpected) < 20 {
			unexpected = append(unexpected, fmt.Sprintf(format, args...))
		}
	}

	postCtx, stopPosts := context.WithCancel(context.Background())
	defer stopPosts()
	readCtx, stopReads := context.WithCancel(context.Background())
	defer stopReads()
	var writers, readers sync.WaitGroup

	for i, p := range posters {
		writers.Go(func() {
			for n := 0; postCtx.Err() == nil; n++ {
				cid := fmt.Sprintf("post-%d-%d", i, n)
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					seq, err := a.post(ctx, p.Key, cid, cid)
					cancel()
					if err == nil {
						mu.Lock()
						acked[cid] = seq
						ackCount[i]++
						mu.Unlock()
						pz.tick(fmt.Sprintf("poster-%d", i))
						break
					}
					// A refused or failed post is retried with the same id,
					// even while stopping (it may have been stored): it is
					// stored once, whatever the broker did with it.
					_ = wait(context.Background(), 20*time.Millisecond)
				}
			}
		})
	}

	for i, f := range followers {
		readers.Go(func() {
			var last int64
			who := fmt.Sprintf("follower-%d", i)
			for readCtx.Err() == nil {
				req, _ := http.NewRequestWithContext(readCtx, "GET", base+"/v1/topics/general/stream", nil)
				req.Header.Set("Authorization", "Bearer "+f.Key)
				req.Header.Set("Last-Event-ID", strconv.FormatInt(last, 10))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					_ = wait(readCtx, 20*time.Millisecond)
					continue
				}
				if resp.StatusCode != http.StatusOK {
					resp.Body.Close()
					_ = wait(readCtx, 20*time.Millisecond)
					continue
				}
				_ = readSSE(resp.Body, func(ev sseEvent) bool {
					switch ev.Event {
					case "message":
						seq, _ := strconv.ParseInt(ev.ID, 10, 64)
						mu.Lock()
						switch {
						case seq == last+1:
						case seq > last+1:
							gaps++
						default:
							dups++
						}
						if seq > last {
							last = seq
							followerMax[i] = seq
						}
						mu.Unlock()
						pz.tick(who)
					case "end":
						var e struct {
							Reason    string `json:"reason"`
							Reconnect bool   `json:"reconnect"`
						}
						_ = json.Unmarshal([]byte(ev.Data), &e)
						mu.Lock()
						if e.Reason == "server_shutdown" && e.Reconnect {
							shutdownEnd++
						}
						mu.Unlock()
						if !e.Reconnect {
							note("%s: stream ended for good: %s", who, ev.Data)
						}
						return false
					}
					return true
				})
				resp.Body.Close()
			}
		})
	}

	wsURL := "ws://" + caddyAddr + "/ws"
	dial := func(ctx context.Context, m member, session string) (*wsclient.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return wsclient.Dial(dctx, wsURL, nil, wsclient.HelloOptions{Identity: m.Identity, MeshID: meshID, MemberID: m.ID,
			SessionID: session, DisplayName: m.Name})
	}
	closed := func(err error) {
		if code, reason := wsclient.CloseStatus(err); code == 1001 && strings.HasPrefix(reason, "shutting_down") {
			mu.Lock()
			restartWS++
			mu.Unlock()
		}
	}
	for k := range shape.dmPairs {
		sender, recv := dm[2*k], dm[2*k+1]
		writers.Go(func() {
			var c *wsclient.Conn
			defer func() {
				if c != nil {
					_ = c.Close()
				}
			}()
			for n := 0; postCtx.Err() == nil; n++ {
				cid := fmt.Sprintf("dm-%d-%d", k, n)
				for {
					if c == nil {
						var err error
						if c, err = dial(context.Background(), sender, fmt.Sprintf("sender-%d", k)); err != nil {
							c = nil
							_ = wait(context.Background(), 20*time.Millisecond)
							continue
						}
					}
					frame, err := wsclient.SealedSend(sender.Identity, recv.ID, recv.Identity.PublicKeyHex(), []byte(cid), "now", cid)
					if err != nil {
						t.Error(err)
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					ans, err := c.Call(ctx, frame)
					cancel()
					if err != nil {
						closed(err)
						_ = c.CloseNow()
						c = nil
						continue
					}
					av := peertest.View(ans)
					if ans.Type == "ack" && len(av.IDs) == 1 {
						mu.Lock()
						if prev, ok := dmAcked[cid]; ok && prev != av.IDs[0] {
							unexpected = append(unexpected, fmt.Sprintf("%s stored twice: %s and %s", cid, prev, av.IDs[0]))
						}
						dmAcked[cid] = av.IDs[0]
						mu.Unlock()
						pz.tick(fmt.Sprintf("dm-sender-%d", k))
						break
					}
					note("send %s answered %s %s %s", cid, ans.Type, av.Code, av.Message)
					_ = wait(context.Background(), 20*time.Millisecond)
				}
			}
		})
		readers.Go(func() {
			who := fmt.Sprintf("dm-receiver-%d", k)
			for readCtx.Err() == nil {
				c, err := dial(readCtx, recv, fmt.Sprintf("receiver-%d", k))
				if err != nil {
					_ = wait(readCtx, 20*time.Millisecond)
					continue
				}
				for {
					f, err := c.Next(readCtx)
					if err != nil {
						closed(err)
						_ = c.CloseNow()
						break
					}
					if f.Type != "push" {
						continue
					}
					push, err := wsclient.As[wsproto.Push](f)
					if err != nil {
						note("%s: %v", who, err)
						continue
					}
					plain, err := meshcrypto.OpenDirect(push.Ciphertext, push.Nonce, recv.Identity, push.From.Pubkey)
					if err != nil {
						note("%s: cannot open %s: %v", who, push.ID, err)
						continue
					}
					cid := string(plain)
					mu.Lock()
					if dmGot[cid] == nil {
						dmGot[cid] = map[string]int{}
					}
					dmGot[cid][push.ID]++
					if dmConfirmed[push.ID] {
						dmDupAfter++
					} else if dmGot[cid][push.ID] > 1 {
						dmRedeliver++
					}
					mu.Unlock()
					pz.tick(who)
					ctx, cancel := context.WithTimeout(readCtx, 10*time.Second)
					ans, err := c.Call(ctx, &wsproto.AckPushes{Type: wsproto.TypeAck, IDs: []string{push.ID}})
					cancel()
					if err != nil {
						closed(err)
						_ = c.CloseNow()
						break
					}
					if acked := peertest.View(ans).Acked; acked != nil && *acked == 1 {
						mu.Lock()
						dmConfirmed[push.ID] = true
						mu.Unlock()
					}
				}
			}
		})
	}

	// Let every poster get n more acks (the cluster is serving).
	progress := func(n int) {
		t.Helper()
		mu.Lock()
		target := make([]int, len(ackCount))
		for i, c := range ackCount {
			target[i] = c + n
		}
		mu.Unlock()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			mu.Lock()
			done := true
			for i, c := range ackCount {
				done = done && c >= target[i]
			}
			mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("posters made no progress for 2 minutes; broker logs:\n%s\n---\n%s", brokers[0].log.String(), brokers[1].log.String())
			}
			time.Sleep(10 * time.Millisecond) // polling shared counters, not waiting for a time
		}
	}
	restart := func(i int, sig syscall.Signal) {
		t.Helper()
		t.Logf("%s %v to broker %d", time.Now().Format("15:04:05.000"), sig, i)
		err := brokers[i].stop(t, sig)
		t.Logf("%s broker %d exited", time.Now().Format("15:04:05.000"), i)
		defer func() { t.Logf("%s broker %d ready again", time.Now().Format("15:04:05.000"), i) }()
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("broker %d after SIGTERM: %v; log:\n%s", i, err, brokers[i].log.String())
		}
		start(i)
		waitReady(t, brokers[i], "http://"+addrs[i]+"/ready")
	}
	began := time.Now()
	progress(shape.acksPerPhase)
	for r := range shape.rounds {
		for _, step := range []struct {
			broker int
			sig    syscall.Signal
		}{{0, syscall.SIGTERM}, {1, syscall.SIGTERM}, {r % 2, syscall.SIGKILL}} {
			restart(step.broker, step.sig)
			progress(shape.acksPerPhase)
		}
	}
	stopPosts()
	writers.Wait()
	elapsed := time.Since(began)

	// Everyone catches up: followers to the last acknowledged seq, the
	// receivers to every acknowledged direct message.
	mu.Lock()
	var maxSeq int64
	for _, s := range acked {
		maxSeq = max(maxSeq, s)
	}
	mu.Unlock()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		mu.Lock()
		caught := true
		for _, m := range followerMax {
			caught = caught && m >= maxSeq
		}
		for cid := range dmAcked {
			caught = caught && len(dmGot[cid]) > 0
		}
		mu.Unlock()
		if caught || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling shared counters
	}
	stopReads()
	readers.Wait()

	// What the database says, read back through a fresh stream.
	stored := map[string]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/topics/general/stream?since=0", nil)
	req.Header.Set("Authorization", "Bearer "+followers[0].Key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = readSSE(resp.Body, func(ev sseEvent) bool {
		if ev.Event != "message" {
			return true
		}
		var m struct {
			Seq             int64  `json:"seq"`
			ClientMessageID string `json:"clientMessageId"`
		}
		_ = json.Unmarshal([]byte(ev.Data), &m)
		if prev, ok := stored[m.ClientMessageID]; ok {
			t.Errorf("post %s stored twice (seq %d and %d)", m.ClientMessageID, prev, m.Seq)
		}
		stored[m.ClientMessageID] = m.Seq
		return m.Seq < maxSeq
	})
	resp.Body.Close()

	lost := 0
	for cid, seq := range acked {
		if stored[cid] != seq {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged post %s (seq %d) is not in the topic (found seq %d)", cid, seq, stored[cid])
			}
		}
	}
	dmLost, dmTwice := 0, 0
	for cid, id := range dmAcked {
		if dmGot[cid][id] == 0 {
			dmLost++
		}
		if len(dmGot[cid]) > 1 {
			dmTwice++
		}
	}
	restarts := 3 * shape.rounds
	postPause, pp := pz.longest("poster")
	followPause, fp := pz.longest("follower")
	sendPause, sp := pz.longest("dm-sender")
	recvPause, rp := pz.longest("dm-receiver")
	t.Logf("ROLLING: %d restarts (%d SIGTERM, %d SIGKILL) in %v; posts acked %d, lost %d; follower gaps %d, duplicates %d; "+
		"DMs acked %d, lost %d, stored twice %d, delivered again after a confirmed ack %d, redelivered before one %d; "+
		"streams ended with server_shutdown %d, /ws closed 1001 shutting_down %d; longest pause: poster %v (%s), follower %v (%s), DM sender %v (%s), DM receiver %v (%s)",
		restarts, 2*shape.rounds, shape.rounds, elapsed.Round(time.Millisecond), len(acked), lost, gaps, dups,
		len(dmAcked), dmLost, dmTwice, dmDupAfter, dmRedeliver, shutdownEnd, restartWS,
		postPause.Round(time.Millisecond), pp, followPause.Round(time.Millisecond), fp, sendPause.Round(time.Millisecond), sp, recvPause.Round(time.Millisecond), rp)
	if lost != 0 || gaps != 0 || dups != 0 || dmLost != 0 || dmTwice != 0 || dmDupAfter != 0 {
		t.Errorf("loss under rolling restarts: posts lost %d, follower gaps %d, duplicates %d, DMs lost %d, stored twice %d, delivered after ack %d",
			lost, gaps, dups, dmLost, dmTwice, dmDupAfter)
	}
	if len(acked) == 0 || len(dmAcked) == 0 {
		t.Error("no traffic went through")
	}
	if shutdownEnd == 0 {
		t.Error("no stream was ended with server_shutdown by a SIGTERM")
	}
	for _, u := range unexpected {
		t.Error(u)
	}
	if testing.Verbose() {
		t.Logf("pauses over a second:\n%s", strings.Join(pz.long, "\n"))
	}
	if t.Failed() {
		t.Logf("broker 0 log:\n%s\nbroker 1 log:\n%s", brokers[0].log.String(), brokers[1].log.String())
	}
}
