package api_test

// Benchmarks of the peer WebSocket, for docs/BENCHMARKS.md:
//
//	go test ./api/ -run '^$' -bench 'WSDirectRoundTrip' -benchtime 2000x
//	go test ./api/ -run '^$' -bench 'WSIdleMemory' -benchtime 1x -timeout 30m
//
// CLAUDEMESH_BENCH_DIALECT picks the database (postgres, the default, or
// sqlite).

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
	wsclient "github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/peer/peertest"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

func benchDialect() models.Dialect {
	if os.Getenv("CLAUDEMESH_BENCH_DIALECT") == "sqlite" {
		return models.SQLite
	}
	return models.Postgres
}

// BenchmarkWSDirectRoundTrip: alice sends a sealed 256-byte direct message
// to bob; bob receives the push, acks it and answers; alice receives the
// answer and acks it. One iteration is that round trip, through the real
// broker (in this process) on loopback: six transactions (two sends, two
// claims, two acks, each with its audit events). Reported: round-trip and
// one-way (send → push) latency percentiles.
func BenchmarkWSDirectRoundTrip(b *testing.B) {
	e := newEnv(b, benchDialect(), func(c *api.Config) { c.WSSendsPerSecond, c.WSSendBurst = 1e6, 1e6 })
	b.Cleanup(e.srv.Close)
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "RTT")
	inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
	alice, bob := e.joinWithIdentity(inv, "alice"), e.joinWithIdentity(inv, "bob")
	ca, cb := e.dialPeer(alice, m.Mesh.ID, "a"), e.dialPeer(bob, m.Mesh.ID, "b")
	body := make([]byte, 256)
	toBob, err := wsclient.SealedSend(alice.id, bob.Member.ID, bob.id.PublicKeyHex(), body, "now", "")
	if err != nil {
		b.Fatal(err)
	}
	toAlice, err := wsclient.SealedSend(bob.id, alice.Member.ID, alice.id.PublicKeyHex(), body, "now", "")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// bob: ack every push and answer it.
	var oneWay []time.Duration
	var sentAt atomic.Int64
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			f, err := cb.Next(ctx)
			if err != nil {
				return
			}
			if f.Type != wsproto.TypePush {
				continue
			}
			mu.Lock()
			oneWay = append(oneWay, time.Since(time.Unix(0, sentAt.Load())))
			mu.Unlock()
			_ = cb.Send(ctx, map[string]any{"type": "ack", "ids": []string{peertest.View(f).ID}})
			_ = cb.Send(ctx, toAlice)
		}
	}()
	rtt := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		sentAt.Store(start.UnixNano())
		if err := ca.Send(ctx, toBob); err != nil {
			b.Fatal(err)
		}
		for {
			f, err := ca.Next(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if f.Type == wsproto.TypePush {
				rtt = append(rtt, time.Since(start))
				if err := ca.Send(ctx, map[string]any{"type": "ack", "ids": []string{peertest.View(f).ID}}); err != nil {
					b.Fatal(err)
				}
				break
			}
		}
	}
	b.StopTimer()
	_ = cb.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	reportPercentiles(b, "rtt", rtt)
	reportPercentiles(b, "oneway", oneWay)
}

func reportPercentiles(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	at := func(q float64) float64 {
		return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), name+"-p50-ms")
	b.ReportMetric(at(0.99), name+"-p99-ms")
}

// BenchmarkWSIdleMemory runs the broker as its own process (so the
// figures are the server's alone), opens 10,000 authenticated, idle peer
// connections to it (200 meshes × 50 sessions of one member each: a
// presence frame per connect goes to the mesh's other sessions, so one
// 10,000-session mesh would measure the connect storm, not idleness), and
// reports the growth of its resident set, Go heap and goroutines per
// connection. The clients read (and drop) every frame, so pings are
// answered as a real peer would.
func BenchmarkWSIdleMemory(b *testing.B) {
	const meshes, perMesh = 200, 50
	const conns = meshes * perMesh
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max // the child inherits it
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < conns+1000 {
		b.Skipf("RLIMIT_NOFILE is %d; %d connections need more", lim.Cur, conns)
	}
	e, pid := startBrokerProcess(b, benchDialect())
	base := e.base
	owner := e.signup()
	type target struct {
		meshID string
		peer   cryptoPeer
	}
	targets := make([]target, meshes)
	for i := range targets {
		m := e.createMesh(owner.AccessToken, fmt.Sprintf("Idle %d", i))
		targets[i] = target{m.Mesh.ID, e.joinWithIdentity(e.invite(owner.AccessToken, m.Mesh.ID, nil), "peer")}
	}
	before := processMemory(b, pid, base)
	b.ResetTimer()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients, failed, connectTime := dialPeers(b, ctx, conns, func(i int) (*wsclient.Conn, error) {
		tg := targets[i/perMesh]
		return wsclient.Dial(ctx, "ws"+base[len("http"):]+"/ws", nil, wsclient.HelloOptions{Identity: tg.peer.id, MeshID: tg.meshID,
			MemberID: tg.peer.Member.ID, SessionID: "s" + strconv.Itoa(i)})
	})
	if failed > 0 {
		b.Fatalf("%d connections failed", failed)
	}
	time.Sleep(3 * time.Second) // let the presence frames drain and the runtime settle before reading RSS
	settled := processMemory(b, pid, base)
	// heap_inuse still holds the connect storm's garbage; the figure that
	// matters is after a collection. An idle broker collects at the latest
	// on the runtime's two-minute forced GC.
	gcs := gcCount(b, base)
	for deadline := time.Now().Add(150 * time.Second); gcCount(b, base) == gcs && time.Now().Before(deadline); {
		time.Sleep(time.Second)
	}
	time.Sleep(2 * time.Second) // the sweeper frees spans after the cycle ends
	after := processMemory(b, pid, base)
	b.StopTimer()
	b.ReportMetric(float64(after.rss-before.rss)/conns/1024, "KiB-RSS/conn")
	b.ReportMetric(float64(after.heap-before.heap)/conns/1024, "KiB-heap/conn")
	b.ReportMetric(float64(settled.heap-before.heap)/conns/1024, "KiB-heap-before-GC/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/conns, "goroutines/conn")
	b.ReportMetric(float64(conns)/connectTime.Seconds(), "hellos/s")
	b.ReportMetric(conns, "conns")
	for _, c := range clients {
		if c != nil {
			_ = c.Socket().CloseNow()
		}
	}
}

// gcCount reads how many collections the broker has run from its /metrics.
func gcCount(b *testing.B, base string) int64 {
	b.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "go_gc_duration_seconds_count" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// dialPeers opens n /ws connections with dial from 32 workers and keeps
// each reading (presence frames, pings) until ctx ends, as a peer does. It
// returns the connections (nil where dial failed), how many failed, and
// how long the n handshakes took.
func dialPeers(b *testing.B, ctx context.Context, n int, dial func(i int) (*wsclient.Conn, error)) ([]*wsclient.Conn, int64, time.Duration) {
	b.Helper()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	clients := make([]*wsclient.Conn, n)
	for range 32 {
		wg.Go(func() {
			for i := range jobs {
				c, err := dial(i)
				if err != nil {
					failed.Add(1)
					b.Logf("peer %d: %v", i, err)
					continue
				}
				clients[i] = c
				go func() {
					for {
						if _, err := c.Next(ctx); err != nil {
							return
						}
					}
				}()
			}
		})
	}
	start := time.Now()
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return clients, failed.Load(), time.Since(start)
}
