package ws

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"
)

// recConn records each Write call to the socket.
type recConn struct {
	net.Conn
	writes [][]byte
	fail   error
	closed bool
}

func (c *recConn) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}
func (c *recConn) SetWriteDeadline(time.Time) error { return nil }
func (c *recConn) Close() error                     { c.closed = true; return nil }

// TestSockWriterCork: uncorked bytes go straight out; corked ones wait for
// the last uncork and leave in one write, in order; a chunk of corkFlushAt
// or more is written without a copy, after what was pending; a failed write
// closes the socket and fails every later write.
func TestSockWriterCork(t *testing.T) {
	rc := &recConn{}
	w := &sockWriter{nc: rc, timeout: time.Second}
	_, _ = w.Write([]byte("ping"))
	if len(rc.writes) != 1 {
		t.Fatalf("uncorked write: %d socket writes", len(rc.writes))
	}
	w.cork()
	w.cork() // a frame inside a batch
	_, _ = w.Write([]byte("a"))
	_, _ = w.Write([]byte("b"))
	if err := w.uncork(); err != nil || len(rc.writes) != 1 {
		t.Fatalf("inner uncork wrote (%v, %d writes)", err, len(rc.writes))
	}
	_, _ = w.Write([]byte("c"))
	if err := w.uncork(); err != nil || len(rc.writes) != 2 || string(rc.writes[1]) != "abc" {
		t.Fatalf("last uncork: %v, writes %q", err, rc.writes)
	}
	w.cork()
	_, _ = w.Write([]byte("d"))
	big := bytes.Repeat([]byte("x"), corkFlushAt)
	_, _ = w.Write(big)
	if len(rc.writes) != 4 || string(rc.writes[2]) != "d" || len(rc.writes[3]) != corkFlushAt {
		t.Fatalf("large chunk: %d writes", len(rc.writes))
	}
	if err := w.uncork(); err != nil || len(rc.writes) != 4 {
		t.Fatalf("uncork after a large chunk: %v, %d writes", err, len(rc.writes))
	}
	// Closing the socket writes what is corked first (a close frame the
	// library writes and follows with a close).
	w.cork()
	_, _ = w.Write([]byte("close frame"))
	if err := (&sockConn{Conn: rc, w: w}).Close(); err != nil || !rc.closed || string(rc.writes[len(rc.writes)-1]) != "close frame" {
		t.Fatalf("close while corked: %v, closed %v, writes %q", err, rc.closed, rc.writes[len(rc.writes)-1])
	}
	_ = w.uncork()
	rc.closed = false
	rc.fail = errors.New("broken pipe")
	w.cork()
	_, _ = w.Write([]byte("e"))
	if err := w.uncork(); err == nil || !rc.closed {
		t.Fatalf("failed flush: %v, closed %v", err, rc.closed)
	}
	if _, err := w.Write([]byte("f")); err == nil {
		t.Fatal("write after a failure succeeded")
	}
}
