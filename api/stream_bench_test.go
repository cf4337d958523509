package api_test

// Stream benchmarks on PostgreSQL (figures in docs/BENCHMARKS.md):
//
//	go test ./api/ -run '^$' -bench 'StreamLatency' -benchtime 1x
//	go test ./api/ -run '^$' -bench 'StreamIdleMemory' -benchtime 1x
//
// They measure; they assert nothing about speed.

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"

	"github.com/claudemesh/claudemesh-go/models"
	"github.com/claudemesh/claudemesh-go/models/storetest"
)

// BenchmarkStreamLatency posts messages one at a time, every 50 ms (a
// steady stream, not a burst), to a topic followed by N SSE subscribers
// (r3labs clients in this process, on the same two cores as the broker and
// PostgreSQL) and reports the post→receive latency over every (message,
// subscriber) pair: from just before the POST is sent to the subscriber's
// handler seeing the event.
func BenchmarkStreamLatency(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			e := newEnv(b, models.Postgres, nil)
			owner := e.signup()
			m := e.createMesh(owner.AccessToken, "Latency")
			key := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "poster").APIKey.Key

			const messages = 100
			// The mesh is fresh, so message i gets seq i; sentAt[seq] is
			// written before the POST and read by receivers without a lock.
			sentAt := make([]atomic.Int64, messages+1)
			lat := make([][]time.Duration, subs)
			var received sync.WaitGroup
			received.Add(subs * messages)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ready := make(chan struct{}, subs)
			transport := &http.Transport{MaxIdleConnsPerHost: subs + 10}
			for i := range subs {
				c := sse.NewClient(e.base + "/v1/topics/general/stream")
				c.Headers["Authorization"] = "Bearer " + key
				c.Connection = &http.Client{Transport: transport}
				go func() {
					_ = c.SubscribeRawWithContext(ctx, func(ev *sse.Event) {
						now := time.Now().UnixNano()
						switch string(ev.Event) {
						case "ready":
							ready <- struct{}{}
						case "message":
							seq, _ := strconv.Atoi(string(ev.ID))
							if seq >= 1 && seq <= messages {
								lat[i] = append(lat[i], time.Duration(now-sentAt[seq].Load()))
								received.Done()
							}
						}
					})
				}()
			}
			for range subs {
				<-ready
			}
			b.ResetTimer()
			for seq := 1; seq <= messages; seq++ {
				sentAt[seq].Store(time.Now().UnixNano())
				got, err := e.post(key, "general", []byte("latency probe"))
				if err != nil {
					b.Fatal(err)
				}
				if got != int64(seq) {
					b.Fatalf("seq %d, want %d", got, seq)
				}
				time.Sleep(50 * time.Millisecond)
			}
			done := make(chan struct{})
			go func() { received.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				b.Fatal("not every delivery arrived within 60 s")
			}
			b.StopTimer()
			var all []time.Duration
			for _, l := range lat {
				all = append(all, l...)
			}
			sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
			pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(1), "max-ms")
			b.ReportMetric(float64(len(all)), "deliveries")
			// The broker's own share: commit reaching the hub → event written
			// to the socket, from its histogram (bucket upper bounds).
			_, metrics, _ := e.call("GET", "/metrics", "", nil)
			b.ReportMetric(histogramQuantile(metrics, "claudemesh_stream_publish_to_write_seconds", 0.50)*1000, "server-p50≤ms")
			b.ReportMetric(histogramQuantile(metrics, "claudemesh_stream_publish_to_write_seconds", 0.99)*1000, "server-p99≤ms")
		})
	}
}

// histogramQuantile returns the upper bound of the bucket holding quantile q
// of a Prometheus histogram in text exposition.
func histogramQuantile(text []byte, name string, q float64) float64 {
	type bucket struct{ le, count float64 }
	var bs []bucket
	for _, l := range strings.Split(string(text), "\n") {
		if !strings.HasPrefix(l, name+"_bucket{le=\"") {
			continue
		}
		rest := strings.TrimPrefix(l, name+"_bucket{le=\"")
		leStr, countStr, _ := strings.Cut(rest, "\"} ")
		le, err := strconv.ParseFloat(leStr, 64)
		if err != nil {
			continue // +Inf
		}
		c, _ := strconv.ParseFloat(countStr, 64)
		bs = append(bs, bucket{le, c})
	}
	if len(bs) == 0 {
		return 0
	}
	total := bs[len(bs)-1].count
	for _, b := range bs {
		if b.count >= q*total {
			return b.le
		}
	}
	return bs[len(bs)-1].le
}

// BenchmarkStreamIdleMemory runs the broker as its own process on
// PostgreSQL, opens 10,000 idle SSE connections to it, and reports the
// growth of its resident set and Go heap per connection.
func BenchmarkStreamIdleMemory(b *testing.B) {
	const conns = 10_000
	e, pid := startBrokerProcess(b, models.Postgres)
	base := e.base
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Idle")
	key := e.join(e.invite(owner.AccessToken, m.Mesh.ID, nil), "idle").APIKey.Key

	before := processMemory(b, pid, base)
	b.ResetTimer()
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := range conns {
		c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		fmt.Fprintf(c, "GET /v1/topics/general/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", key)
		r := bufio.NewReader(c)
		// Read through the ready event so the stream is fully set up.
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				b.Fatalf("connection %d: %v", i, err)
			}
			if strings.HasPrefix(line, "data: {\"topics\"") {
				break
			}
		}
		open = append(open, c)
	}
	time.Sleep(2 * time.Second) // let the runtime settle before reading RSS
	after := processMemory(b, pid, base)
	b.StopTimer()
	b.ReportMetric(float64(after.rss-before.rss)/conns/1024, "KiB-RSS/conn")
	b.ReportMetric(float64(after.heap-before.heap)/conns/1024, "KiB-heap/conn")
	b.ReportMetric(float64(after.goroutines-before.goroutines)/conns, "goroutines/conn")
	b.ReportMetric(conns, "conns")
}

// startBrokerProcess builds the broker and runs it as its own process on a
// fresh database of the dialect, so memory figures are the broker's alone.
// It returns a client env for it and its pid; the process is killed when
// the benchmark ends.
func startBrokerProcess(b *testing.B, d models.Dialect, extraEnv ...string) (*env, int) {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "claudemesh-broker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/claudemesh-broker").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	opt := storetest.Options(b, d)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+opt.DatabaseURL, "CLAUDEMESH_SQLITE_PATH="+opt.SQLitePath, "BROKER_PORT="+strconv.Itoa(port),
		"LOG_LEVEL=error", "RATE_LIMIT_PER_SECOND=1000000", "RATE_LIMIT_BURST=1000000", "AUTH_RATE_LIMIT_PER_SECOND=1000", "AUTH_RATE_LIMIT_BURST=1000")
	cmd.Env = append(cmd.Env, extraEnv...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for range 100 {
		if resp, err := http.Get(base + "/ready"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(50 * time.Millisecond) // waiting for a child process to listen
	}
	return &env{t: b, base: base, client: newContractClient(b)}, cmd.Process.Pid
}

type memSample struct{ rss, heap, goroutines float64 }

// processMemory reads VmRSS from /proc and the Go heap and goroutine count
// from the broker's own /metrics.
func processMemory(b *testing.B, pid int, base string) memSample {
	b.Helper()
	var s memSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			s.rss = kb * 1024
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			s.heap = v
		case "go_goroutines":
			s.goroutines = v
		}
	}
	return s
}
