package api_test

// The presence storm of issue 18 (figures in docs/BENCHMARKS.md):
//
//	go test ./api/ -run '^$' -bench 'PresenceStorm' -benchtime 1x -timeout 30m
//
// CLAUDEMESH_BENCH_PEERS and CLAUDEMESH_BENCH_STREAMS size it (2,000 each by
// default); CLAUDEMESH_BENCH_STREAM_QUERY is appended to /stream (for
// example "?types=message,notification" for subscribers that opt out of
// presence); CLAUDEMESH_BENCH_BROKER_ENV adds broker variables
// (space-separated NAME=value).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	wsclient "github.com/claudemesh/claudemesh-go/peer"
)

func benchSize(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkPresenceStorm runs the broker as its own process, opens S idle
// /stream subscribers of one mesh (raw sockets in this process that read
// and count every byte after their ready event), then connects P /ws peers
// to the same mesh, 32 handshakes at a time. Reported: the wall time of
// the P handshakes, the broker process's CPU time (user + system) from
// the first handshake until it falls quiet, and the bytes and presence
// events pushed to the SSE subscribers until then (nothing more for 2 s).
// The clients share the machine with the broker, so the wall time also
// counts their reading; the CPU time is the broker's alone. Every
// limit that would refuse the storm (rates, streams per credential,
// sessions per member) is raised, so the figure is the fan-out's alone.
func BenchmarkPresenceStorm(b *testing.B) {
	peers, streams := benchSize("CLAUDEMESH_BENCH_PEERS", 2000), benchSize("CLAUDEMESH_BENCH_STREAMS", 2000)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max // the child inherits it
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if need := uint64(peers+streams) + 1000; lim.Cur < need {
		b.Skipf("RLIMIT_NOFILE is %d; the storm needs %d", lim.Cur, need)
	}
	env := []string{"STREAM_MAX_PER_CREDENTIAL=1000000", "WS_MAX_SESSIONS_PER_MEMBER=1000000", "STREAM_QUEUE_EVENTS=1048576"}
	if extra := os.Getenv("CLAUDEMESH_BENCH_BROKER_ENV"); extra != "" {
		env = append(env, strings.Fields(extra)...) // e.g. PPROF_ADDR=127.0.0.1:6061
	}
	e, pid := startBrokerProcess(b, benchDialect(), env...)
	owner := e.signup()
	m := e.createMesh(owner.AccessToken, "Storm")
	inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
	watcher := e.join(inv, "watcher")
	peer := e.joinWithIdentity(inv, "peer")
	u, err := url.Parse(e.base)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var sseBytes, presenceEvents atomic.Int64
	var ready sync.WaitGroup
	conns := make([]net.Conn, 0, streams)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	req := fmt.Sprintf("GET /stream%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: text/event-stream\r\n\r\n",
		os.Getenv("CLAUDEMESH_BENCH_STREAM_QUERY"), u.Host, watcher.APIKey.Key)
	for i := range streams {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			b.Fatalf("stream %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, req); err != nil {
			b.Fatal(err)
		}
		ready.Add(1)
		go func() {
			br := bufio.NewReaderSize(c, 4096)
			isReady := false
			for {
				line, err := br.ReadSlice('\n')
				if errors.Is(err, bufio.ErrBufferFull) {
					sseBytes.Add(int64(len(line)))
					continue
				}
				if err != nil {
					if !isReady {
						b.Errorf("stream ended before ready: %v", err)
						ready.Done()
					}
					return
				}
				if !isReady {
					if bytes.HasPrefix(line, []byte("event: ready")) {
						isReady = true
						ready.Done()
					}
					continue
				}
				sseBytes.Add(int64(len(line)))
				if bytes.HasPrefix(line, []byte("event: presence")) {
					presenceEvents.Add(1)
				}
			}
		}()
	}
	ready.Wait()

	cpuBefore := processCPU(b, pid)
	b.ResetTimer()
	clients, failed, handshakes := dialPeers(b, ctx, peers, func(i int) (*wsclient.Conn, error) {
		return wsclient.Dial(ctx, "ws"+e.base[len("http"):]+"/ws", nil, wsclient.HelloOptions{Identity: peer.id, MeshID: m.Mesh.ID,
			MemberID: peer.Member.ID, SessionID: "s" + strconv.Itoa(i)})
	})
	// The fan-out may outlast the handshakes: wait until the subscribers
	// have received nothing for 2 s (or 5 minutes have passed).
	for last, deadline := int64(-1), time.Now().Add(5*time.Minute); time.Now().Before(deadline); {
		now := sseBytes.Load()
		if now == last {
			break
		}
		last = now
		time.Sleep(2 * time.Second)
	}
	b.StopTimer()
	brokerCPU := processCPU(b, pid) - cpuBefore
	if failed > 0 {
		b.Fatalf("%d peers failed to connect", failed)
	}
	b.ReportMetric(handshakes.Seconds(), "handshakes-s")
	b.ReportMetric(brokerCPU.Seconds(), "broker-cpu-s")
	b.ReportMetric(float64(sseBytes.Load())/1e6, "MB-to-SSE")
	b.ReportMetric(float64(presenceEvents.Load())/float64(streams), "presence-events/SSE")
	b.ReportMetric(float64(peers), "peers")
	b.ReportMetric(float64(streams), "streams")
	for _, c := range clients {
		if c != nil {
			_ = c.Socket().CloseNow()
		}
	}
	if q := os.Getenv("CLAUDEMESH_BENCH_STREAM_QUERY"); q != "" {
		b.Logf("stream query %s", strings.TrimSpace(q))
	}
}

// processCPU is the user + system CPU time a process has used so far.
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at ") ".
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)           // field 14 of stat
	stime, _ := strconv.ParseInt(f[12], 10, 64)           // field 15
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}
