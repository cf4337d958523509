package ws

import (
	"net"
	"sync"
	"time"
)

// sockWriter is what the WebSocket library's bufio.Writer writes into: the
// hijacked socket, with a cork. coder/websocket flushes its buffer once per
// frame and has no call that writes several messages at once; corked, the
// flushes land in a pooled buffer and go out in one write when the last
// cork is lifted. The bytes on the wire are the same frames in the same
// order, only fewer write calls carry them.
//
// Every frame the broker writes (conn.write) is corked, and the writer
// corks around a batch (queued rows, hub events, a replay page), never
// around a query or a ping's wait. The library's own control frames (pongs,
// pings, close) pass straight through while nothing is corked, and join
// the pending bytes otherwise. So the library's buffer only has to hold a
// control frame, and an idle connection keeps no write buffer at all.
type sockWriter struct {
	nc      net.Conn
	timeout time.Duration // a flush's write deadline (WriteTimeout)

	mu    sync.Mutex
	corks int     // cork calls not yet matched by uncork
	buf   *[]byte // pending bytes while corked; from corkPool
	err   error   // a failed write; the socket is closed and every write fails
}

// corkFlushAt bounds the pending bytes: past it they are written at once,
// and a chunk at least this large is written without a copy.
const corkFlushAt = 32 << 10

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

func (w *sockWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if w.corks == 0 {
		return w.writeLocked(p)
	}
	if w.buf != nil && len(*w.buf)+len(p) > corkFlushAt {
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	if len(p) >= corkFlushAt {
		return w.writeLocked(p)
	}
	if w.buf == nil {
		w.buf = corkPool.Get().(*[]byte)
	}
	*w.buf = append(*w.buf, p...)
	return len(p), nil
}

// cork holds writes until the matching uncork.
func (w *sockWriter) cork() {
	w.mu.Lock()
	w.corks++
	w.mu.Unlock()
}

// uncork lifts one cork; the last one writes what is pending.
func (w *sockWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corks--
	if w.corks > 0 {
		return w.err
	}
	return w.flushLocked()
}

func (w *sockWriter) flushLocked() error {
	if w.buf == nil {
		return w.err
	}
	b := w.buf
	w.buf = nil
	var err error
	if len(*b) > 0 && w.err == nil {
		_, err = w.writeLocked(*b)
	}
	if cap(*b) <= 64<<10 { // a large batch's buffer is not kept
		*b = (*b)[:0]
		corkPool.Put(b)
	}
	if err != nil {
		return err
	}
	return w.err
}

// sockConn is the hijacked socket as the library sees it: closing it first
// writes what is corked. The library writes a close frame and closes the
// socket right after (answering a peer's close); corked behind another
// goroutine's batch, that frame would otherwise be lost.
type sockConn struct {
	net.Conn
	w *sockWriter
}

func (c *sockConn) Close() error {
	// Not while a write is in progress: it may be stuck on a peer that does
	// not read, and the close is what ends it.
	if c.w.mu.TryLock() {
		_ = c.w.flushLocked()
		c.w.mu.Unlock()
	}
	return c.Conn.Close()
}

// writeLocked writes to the socket within the write deadline. A failed
// write closes the socket, as the library does when a frame's write times
// out: the reader then ends the connection.
func (w *sockWriter) writeLocked(p []byte) (int, error) {
	_ = w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.nc.Write(p)
	_ = w.nc.SetWriteDeadline(time.Time{})
	if err != nil {
		w.err = err
		_ = w.nc.Close()
	}
	return n, err
}
