package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// errNotConnected is returned by call when the broker stays unreachable.
var errNotConnected = errors.New("not connected to the broker (reconnecting)")

// link is the session's one /ws connection, kept up with backoff. One
// goroutine (run) reads every frame and hands answers to the callers
// waiting on their ref, so tools can call concurrently; writes go straight
// to the socket, which is safe for concurrent use.
type link struct {
	sess    *peer.Session
	hc      *http.Client
	session peer.WSSession
	// onPush gets every direct message push, on the reader goroutine.
	onPush func(ctx context.Context, p wsproto.Push)
	// onMessage gets every topic feed message, on the reader goroutine.
	onMessage func(e wsproto.Event)
	// onUp runs after each welcome, off the reader goroutine.
	onUp func(ctx context.Context)
	logf func(format string, args ...any)

	mu      sync.Mutex
	wc      *peer.Conn
	up      chan struct{} // closed while connected; replaced when down
	waiters map[string]chan *peer.Frame
	refs    int
}

func newLink(sess *peer.Session, hc *http.Client, session peer.WSSession) *link {
	return &link{sess: sess, hc: hc, session: session, up: make(chan struct{}), waiters: map[string]chan *peer.Frame{},
		onPush: func(context.Context, wsproto.Push) {}, onMessage: func(wsproto.Event) {}, onUp: func(context.Context) {}, logf: func(string, ...any) {}}
}

// run connects, reads and reconnects until ctx ends.
func (l *link) run(ctx context.Context) {
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		wc, err := l.sess.Mesh.DialSession(ctx, l.sess.ID, l.session, l.hc)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.logf("connect to %s: %v; retrying in %s", l.sess.Mesh.Server, err, delay)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, 10*time.Second)
			continue
		}
		started := time.Now()
		l.setConn(wc)
		go l.onUp(ctx)
		err = l.read(ctx, wc)
		l.setConn(nil)
		_ = wc.CloseNow()
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 30*time.Second {
			delay = 200 * time.Millisecond // it was a working connection: try again at once
		}
		l.logf("connection lost (%v); reconnecting in %s", err, delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

func (l *link) setConn(wc *peer.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wc = wc
	if wc != nil {
		close(l.up)
		return
	}
	l.up = make(chan struct{})
	for ref, ch := range l.waiters { // their answers died with the connection
		close(ch)
		delete(l.waiters, ref)
	}
}

// read dispatches frames until the connection fails.
func (l *link) read(ctx context.Context, wc *peer.Conn) error {
	for {
		f, err := wc.Next(ctx)
		if err != nil {
			return err
		}
		switch f.Type {
		case wsproto.TypePush:
			if p, err := peer.As[wsproto.Push](f); err == nil {
				l.onPush(ctx, p)
			}
			continue
		case wsproto.TypeMessage:
			if e, err := peer.As[wsproto.Event](f); err == nil {
				l.onMessage(e)
			}
			continue
		}
		if f.Ref == "" || f.Type == wsproto.TypePresence {
			continue
		}
		l.mu.Lock()
		ch, ok := l.waiters[f.Ref]
		delete(l.waiters, f.Ref)
		l.mu.Unlock()
		if ok {
			ch <- f // buffered: never blocks the reader
		}
	}
}

// conn waits up to wait for a connection.
func (l *link) conn(ctx context.Context, wait time.Duration) (*peer.Conn, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		l.mu.Lock()
		wc, up := l.wc, l.up
		l.mu.Unlock()
		if wc != nil {
			return wc, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, errNotConnected
		case <-up:
		}
	}
}

// Call sends a request with a fresh ref and waits for its answer (an
// error frame included: peer.Ask turns it into an error). It makes the
// link a peer.Caller, so tools call concurrently over one connection.
func (l *link) Call(ctx context.Context, req wsproto.Request) (*peer.Frame, error) {
	wc, err := l.conn(ctx, 10*time.Second)
	if err != nil {
		return nil, err
	}
	ch := make(chan *peer.Frame, 1)
	l.mu.Lock()
	l.refs++
	ref := "m" + strconv.Itoa(l.refs)
	l.waiters[ref] = ch
	l.mu.Unlock()
	req.SetRef(ref)
	if err := wc.Send(ctx, req); err != nil {
		l.mu.Lock()
		delete(l.waiters, ref)
		l.mu.Unlock()
		return nil, fmt.Errorf("send to the broker: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case f, ok := <-ch:
		if !ok {
			return nil, errors.New("the connection to the broker broke before it answered; try again")
		}
		return f, nil
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.waiters, ref)
		l.mu.Unlock()
		return nil, fmt.Errorf("no answer from the broker: %w", ctx.Err())
	}
}

// ack acknowledges pushes without waiting for an answer: a lost ack only
// means a re-push, which the inbox recognises by id and acks again.
func (l *link) ack(ctx context.Context, ids []string) {
	l.mu.Lock()
	wc := l.wc
	l.mu.Unlock()
	if wc == nil || len(ids) == 0 {
		return
	}
	if err := peer.AckPushes(ctx, wc, ids); err != nil {
		l.logf("ack: %v", err)
	}
}
