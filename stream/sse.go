package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// SSE timing defaults.
const (
	DefaultHeartbeat  = 15 * time.Second
	DefaultRevalidate = 5 * time.Second
	// DefaultUnavailableGrace is how long a stream outlives a database it
	// cannot re-check its credential against.
	DefaultUnavailableGrace = time.Minute
	retryMillis             = 3000
	replayPage              = 500
	writeTimeout            = 10 * time.Second
)

// SSE is one Server-Sent Events response: a thin writer over a Feed.
type SSE struct {
	// Feed is the started feed; Serve owns its subscription and closes it.
	Feed *Feed
	// Resume replays the database after the feed's position before going
	// live (a Last-Event-ID or ?since= was given).
	Resume bool
	// Revalidate is called every RevalidateEvery. A refusal (revoked key or
	// member, lost topic access, archive) ends the stream at once; a check
	// that could not be made (database unreachable) is retried at the same
	// cadence and ends the stream only after UnavailableGrace.
	Revalidate       func(ctx context.Context) error
	RevalidateEvery  time.Duration
	UnavailableGrace time.Duration
	Heartbeat        time.Duration
	// WriteTimeout bounds a blocking write to the client (0 = 10 s).
	WriteTimeout time.Duration
	// Ready is the payload of the first event.
	Ready any
	// Stop ends the stream when closed (server shutdown).
	Stop <-chan struct{}
}

// Serve starts the stream. When the connection can be taken over from
// net/http, the stream continues on its own goroutine and Serve returns at
// once, so net/http and the router release everything they held for the
// request. Otherwise Serve streams on the caller's goroutine until the end.
// Either way Serve owns the subscription and closes it, and done (if not
// nil) is called exactly once, with the reason, when the stream has ended.
func (o *SSE) Serve(ctx context.Context, w http.ResponseWriter, done func(error)) error {
	if done == nil {
		done = func(error) {}
	}
	write, direct, closeConn, hijacked, err := open(w, orDefault(o.WriteTimeout, writeTimeout))
	if err != nil {
		o.Feed.Sub().Close()
		done(err)
		return err
	}
	if !hijacked {
		err := o.run(ctx, write, nil)
		closeConn()
		done(err)
		return err
	}
	// The request's context ends when the handler returns; the stream's
	// own context ends with the stream.
	go func() { //nolint:gosec // G118: the stream outlives the request on purpose (see above)
		ctx, cancel := context.WithCancel(context.Background())
		err := o.run(ctx, write, direct)
		cancel()
		closeConn()
		done(err)
	}()
	return nil
}

// run writes the stream until the client leaves, the subscription ends or
// revalidation fails. Resume is exact: the feed replays the database after
// the resume point, then live events, skipping any seq already written.
// With direct (a non-blocking socket write) the hub writes live events
// itself once the replay is done; every write here then holds the
// subscription's write lock so the two never interleave.
func (o *SSE) run(ctx context.Context, rawWrite func([]byte) error, direct func([]byte) (int, error)) error {
	sub := o.Feed.Sub()
	defer sub.Close()
	write := func(b []byte) error {
		sub.LockWrites()
		defer sub.UnlockWrites()
		return rawWrite(b)
	}
	m := sub.hub.metrics
	m.connections.Inc()
	defer m.connections.Dec()

	hello := fmt.Appendf(nil, "retry: %d\n\n", retryMillis)
	hello = append(hello, frame(0, "ready", mustJSON(o.Ready))...)
	if err := write(hello); err != nil {
		return err
	}
	var buf []byte // reused between writes; one event is written as it is
	writeEvents := func(events []*Event) error {
		out := events[0].SSE
		if len(events) > 1 {
			buf = buf[:0]
			for _, e := range events {
				buf = append(buf, e.SSE...)
			}
			out = buf
		}
		if err := rawWrite(out); err != nil {
			return writeErr{err}
		}
		if cap(buf) > 64<<10 {
			buf = nil // a replay page may grow it; do not keep that per idle stream
		}
		return nil
	}
	if o.Resume {
		if err := o.Feed.Replay(ctx, writeEvents); err != nil {
			if !isWriteErr(err) {
				end(sub, rawWrite, err)
			}
			return err
		}
	}
	if direct != nil {
		sub.GoDirect(direct)
	}
	hb := time.NewTicker(orDefault(o.Heartbeat, DefaultHeartbeat))
	defer hb.Stop()
	rv := time.NewTicker(orDefault(o.RevalidateEvery, DefaultRevalidate))
	defer rv.Stop()
	var failingSince time.Time // first of an unbroken run of checks that could not be made
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-o.Stop:
			finish(sub, rawWrite, endFrame(EndServerShutdown, true, sub.position()))
			return nil
		case <-sub.Done():
			// Cut off for falling behind, or after an unfillable gap: told
			// why and where to resume, if the socket still takes a write
			// within the write timeout (a slow reader that is alive gets
			// it; a socket that takes nothing gets a bare EOF). Closed
			// here, or the socket is broken: nothing to say.
			err := sub.Err()
			if !errors.Is(err, errClosed) && !isWriteErr(err) {
				end(sub, rawWrite, err)
			}
			return err
		case <-hb.C:
			if err := write([]byte(": heartbeat\n\n")); err != nil {
				return err
			}
		case now := <-rv.C:
			err := o.Revalidate(ctx)
			if err == nil {
				failingSince = time.Time{}
				break
			}
			if _, _, transient := EndReason(err); transient {
				if failingSince.IsZero() {
					failingSince = now
				}
				if now.Sub(failingSince) < orDefault(o.UnavailableGrace, DefaultUnavailableGrace) {
					continue // keep streaming; the next tick tries again
				}
			}
			end(sub, rawWrite, err)
			return err
		case <-sub.Ready():
			sub.LockWrites()
			var err error
			if tail := sub.TakePending(); tail != nil {
				err = rawWrite(tail)
			}
			events := o.Feed.Live()
			if err == nil && len(events) > 0 {
				err = writeEvents(events)
			}
			sub.UnlockWrites()
			if err != nil {
				return err
			}
			if len(events) == 0 {
				continue
			}
			now := time.Now()
			for _, e := range events {
				if !e.At.IsZero() {
					m.latency.Observe(now.Sub(e.At).Seconds())
				}
			}
			m.sent.Add(float64(len(events)))
		}
	}
}

// writeErr marks a failed write to the client: no end event can follow it.
type writeErr struct{ error }

func (e writeErr) Unwrap() error { return e.error }

func isWriteErr(err error) bool {
	var we writeErr
	return errors.As(err, &we)
}

// end writes the `end` event for err: a fixed reason code and whether to
// reconnect (from the stream's position), never the error's text.
func end(sub *Subscription, rawWrite func([]byte) error, err error) {
	code, reconnect, _ := EndReason(err)
	finish(sub, rawWrite, endFrame(code, reconnect, sub.position()))
}

// finish writes a last frame, after whatever a direct write of the hub
// left unwritten: a frame written before that tail would land inside an
// event. It holds the subscription's write lock meanwhile.
func finish(sub *Subscription, rawWrite func([]byte) error, last []byte) {
	sub.LockWrites()
	defer sub.UnlockWrites()
	_ = rawWrite(append(sub.TakePending(), last...))
}

// endFrame renders an `end` event. One that asks the client to reconnect
// carries the resume point: the seq of the last message this stream wrote
// (the Last-Event-ID an EventSource sends by itself).
func endFrame(code string, reconnect bool, pos int64) []byte {
	p := endPayload{Reason: code, Reconnect: reconnect}
	if reconnect {
		p.LastEventID = strconv.FormatInt(pos, 10)
	}
	return frame(0, "end", mustJSON(p))
}

// open starts the response. It takes the connection over from net/http when
// it can: an idle stream then costs one goroutine and no net/http buffers
// (net/http keeps a background reader goroutine and ~12 KiB of bufio per
// connection for a handler that is still running). The body is delimited by
// closing the connection, so no chunked encoding is needed. A dead client is
// noticed at the next write (a heartbeat at the latest).
func open(w http.ResponseWriter, timeout time.Duration) (write func([]byte) error, direct func([]byte) (int, error), closeConn func(), hijacked bool, err error) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache, no-store")
	h.Set("X-Accel-Buffering", "no")
	rc := http.NewResponseController(w)
	conn, _, err := rc.Hijack()
	if err != nil {
		// Not HTTP/1.x (or a test recorder): stream through net/http.
		h.Set("Connection", "keep-alive")
		w.WriteHeader(http.StatusOK)
		write = func(b []byte) error {
			_ = rc.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := w.Write(b); err != nil {
				return err
			}
			return rc.Flush()
		}
		return write, nil, func() {}, false, nil //nolint:nilerr // no hijack is a mode, not a failure
	}
	h.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	// net/http's buffers are dropped with the handler: anything the client
	// sends after the request is ignored, and whole frames go straight to
	// the socket.
	write = func(b []byte) error {
		_ = conn.SetWriteDeadline(time.Now().Add(timeout))
		_, err := conn.Write(b)
		// Cleared again: a deadline left behind would expire under the
		// hub's direct writes, which never wait and need none.
		_ = conn.SetWriteDeadline(time.Time{})
		return err
	}
	if err := write(head.Bytes()); err != nil {
		_ = conn.Close() // the write error is the one to report
		return nil, nil, nil, true, err
	}
	return write, nonBlockingWriter(conn), func() { _ = conn.Close() }, true, nil
}

// nonBlockingWriter writes to conn's socket without ever waiting: it
// returns how much the kernel took, short (possibly 0) when the socket
// buffer is full. nil when conn has no socket of its own (TLS, a pipe).
func nonBlockingWriter(conn net.Conn) func([]byte) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(b []byte) (int, error) {
		total := 0
		var werr error
		err := rc.Write(func(fd uintptr) bool {
			for total < len(b) {
				n, err := syscall.Write(int(fd), b[total:])
				switch {
				case err == syscall.EINTR:
					continue
				case err == syscall.EAGAIN:
					return true // full: the rest is the writer goroutine's
				case err != nil:
					werr = err
					return true
				case n == 0:
					return true
				}
				total += n
			}
			return true
		})
		if err == nil {
			err = werr
		}
		return total, err
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ClampResume bounds a resume point by the mesh's newest seq, read after
// subscribing. A larger one names a message that does not exist (a client
// that followed a database since restored, or a made-up id); filtering live
// events by it would silently mute the stream until the mesh caught up, so
// it is clamped and the client told (clamped = true).
func ClampResume(since, lastSeq int64) (int64, bool) {
	if since > lastSeq {
		return lastSeq, true
	}
	return since, false
}

// ParseLastEventID reads the resume point from the Last-Event-ID header or
// ?since=; -1 means none was given.
func ParseLastEventID(header, since string) (int64, error) {
	raw := header
	if raw == "" {
		raw = since
	}
	if raw == "" {
		return -1, nil
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("Last-Event-ID and since must be a message seq (a non-negative integer)")
	}
	return n, nil
}
