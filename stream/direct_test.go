package stream

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/models"
)

// MessagesAfter makes memStore a FeedStore (its seqs have no holes).
func (m *memStore) MessagesAfter(ctx context.Context, meshID string, _ []string, after int64, limit int) ([]models.MessageRow, error) {
	return m.MeshMessagesBetween(ctx, meshID, after, after+int64(limit), limit)
}

// sseServer serves the hub's mesh as SSE streams over real loopback
// sockets (so the hub writes to them directly), with the given blocking
// write timeout. sndBuf, when set, shrinks each server socket's send
// buffer so a client that does not read fills it quickly.
func sseServer(t *testing.T, h *Hub, store *memStore, timeout time.Duration, sndBuf int) string {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _, err := h.StartFeed(r.Context(), store, h.Subscribe("mesh", nil), all, []string{"t"}, -1)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		o := &SSE{Feed: f, Revalidate: func(context.Context) error { return nil }, Ready: map[string]any{}, Stop: stop, WriteTimeout: timeout}
		_ = o.Serve(context.Background(), w, nil)
	}))
	if sndBuf > 0 {
		srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
			if st == http.StateNew {
				_ = c.(*net.TCPConn).SetWriteBuffer(sndBuf)
			}
		}
	}
	srv.Start()
	t.Cleanup(func() { close(stop); srv.CloseClientConnections(); srv.Close() })
	return srv.URL
}

// sseClient opens a stream with a small receive buffer and returns a reader
// positioned after the ready event.
func sseClient(t *testing.T, url string) *bufio.Reader {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	cl := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	resp, err := cl.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("before ready: %v", err)
		}
		if strings.HasPrefix(line, "event: ready") {
			return br
		}
	}
}

// nextSeq reads up to the next event's id.
func nextSeq(br *bufio.Reader) (int64, error) {
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			return strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		}
	}
}

// A stream the hub writes to directly must not inherit a deadline from an
// earlier blocking write: one that expired under the direct writes cut
// every quiet stream off after its first write timeout.
func TestDirectWritesOutliveTheWriteDeadline(t *testing.T) {
	store := &memStore{rows: map[int64]models.MessageRow{}}
	h := NewHub(store, slog.Default(), nil, Limits{})
	br := sseClient(t, sseServer(t, h, store, 50*time.Millisecond, 0))
	time.Sleep(200 * time.Millisecond) // four write timeouts
	for seq := int64(1); seq <= 3; seq++ {
		h.Deliver(store.commit(seq))
		got, err := nextSeq(br)
		if err != nil || got != seq {
			t.Fatalf("event %d: got %d, %v", seq, got, err)
		}
	}
}

// A reader that stops reading fills its socket: direct writes come up
// short, the tail is left to the writer goroutine and later events queue
// behind it. Every event must still arrive once, in order.
func TestStalledReaderGetsEveryEventOnceInOrder(t *testing.T) {
	const n = 3000
	store := &memStore{rows: map[int64]models.MessageRow{}}
	h := NewHub(store, slog.Default(), nil, Limits{MaxQueuedEvents: 2 * n, MaxQueuedBytes: 64 << 20})
	url := sseServer(t, h, store, 10*time.Second, 4096)
	readers := []*bufio.Reader{sseClient(t, url), sseClient(t, url)}
	body := strings.Repeat("x", 1024)
	for seq := int64(1); seq <= n; seq++ {
		c := store.commit(seq)
		c.Messages[0].Ciphertext = body // ~3 MiB in all: far more than the socket buffers
		h.Deliver(c)
	}
	for i, br := range readers {
		for want := int64(1); want <= n; want++ {
			got, err := nextSeq(br)
			if err != nil || got != want {
				t.Fatalf("reader %d: event %d: got %d, %v", i, want, got, err)
			}
		}
	}
}
