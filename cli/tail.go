package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/r3labs/sse/v2"
	"github.com/spf13/cobra"
	"gopkg.in/cenkalti/backoff.v1"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
)

type topicTailOptions struct {
	app         *app
	io          ioStreams
	Topic       string
	Backlog     int
	ForwardOnly bool
	NoReseal    bool
	JSON        bool
}

func (a *app) topicTailCommand() *cobra.Command {
	opts := &topicTailOptions{app: a}
	c := &cobra.Command{
		Use:   "tail <name>",
		Short: "Follow a topic live, decrypted; seals the key for new members as it runs",
		Long: `Follow a topic: print its newest messages, then every new one as it
arrives. Encrypted (v2) messages are decrypted here; v1 messages are marked
[plaintext]. After any break (network, broker restart) it reconnects and
resumes exactly where it stopped (Last-Event-ID), nothing lost or doubled.

While it runs, every 30 s it seals the topic key for members who joined
and have none yet, so they can read too (--no-reseal turns that off).`,
		Example: "  claudemesh topic tail deploys\n  claudemesh topic tail deploys --forward-only --json | jq .text",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Topic = streamsOf(cmd), args[0]
			return runTopicTail(cmd.Context(), opts)
		},
	}
	c.Flags().BoolVar(&opts.ForwardOnly, "forward-only", false, "start at the live end: no backlog")
	c.Flags().IntVar(&opts.Backlog, "backlog", 20, "how many recent messages to print first (0-200)")
	c.Flags().BoolVar(&opts.NoReseal, "no-reseal", false, "do not seal the topic key for members waiting for it")
	jsonFlag(c, &opts.JSON)
	return c
}

func runTopicTail(ctx context.Context, opts *topicTailOptions) error {
	interval, err := peer.ResealInterval(opts.app.env.Getenv)
	if err != nil {
		return usagef("%v", err)
	}
	backlog := opts.Backlog
	if backlog < 0 || backlog > 200 {
		return usagef("--backlog must be 0 to 200, got %d", backlog)
	}
	if opts.ForwardOnly {
		backlog = 0
	}
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Topic)
	t := &tailer{s: s, topic: name, asJSON: opts.JSON, out: opts.io.Out, errOut: opts.io.ErrOut,
		now: opts.app.env.Now, hc: opts.app.env.HTTP, keys: peer.NewTopicKeys(s.p, name)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := t.start(ctx, backlog); err != nil {
		return err
	}
	var wg sync.WaitGroup
	if !opts.NoReseal {
		wg.Go(func() {
			peer.ResealLoop(ctx, interval, func(context.Context) ([]*peer.TopicKeys, error) { return []*peer.TopicKeys{t.keys}, nil },
				func(r peer.ResealReport) {
					if r.Err != nil {
						t.note("re-seal: %v", r.Err)
					} else {
						t.note("sealed #%s's key for @%s", r.Topic, strings.Join(r.Sealed, ", @"))
					}
				})
		})
	}
	err = t.follow(ctx)
	cancel()
	wg.Wait()
	return err
}

// tailer follows one topic's SSE stream.
type tailer struct {
	s      *session
	topic  string
	asJSON bool
	out    io.Writer
	errOut io.Writer
	now    func() time.Time
	hc     *http.Client

	keys    *peer.TopicKeys
	lastSeq int64 // the newest seq printed; only follow's goroutine touches it
	outMu   sync.Mutex
}

// start fetches the key and prints the backlog; lastSeq is where the
// stream resumes from (0 with no backlog: the stream starts live).
func (t *tailer) start(ctx context.Context, backlog int) error {
	if _, _, _, err := t.keys.Fetch(ctx, 0); err != nil { // also: is the topic there for us?
		return topicHint(err, t.topic)
	}
	limit := max(backlog, 1)
	r, err := t.s.api.ListMessagesWithResponse(ctx, t.topic, &client.ListMessagesParams{Limit: ptr(limit)})
	if err := t.s.check(err, r, http.StatusOK); err != nil {
		return topicHint(err, t.topic)
	}
	items := r.JSON200.Items // newest first
	if backlog == 0 {
		if len(items) > 0 {
			t.lastSeq = items[0].Seq
		}
		return nil
	}
	for i := len(items) - 1; i >= 0; i-- {
		if err := t.show(ctx, &items[i]); err != nil {
			return err
		}
	}
	return nil
}

// show prints one message unless it was printed already (a replay after
// a reconnect may overlap what was printed; seqs only grow).
func (t *tailer) show(ctx context.Context, m *client.Message) error {
	if m.Seq <= t.lastSeq {
		return nil
	}
	// A key we lack may have been sealed for us since: look again, at most
	// once a second per epoch (a failed look leaves the message pending).
	o, _ := t.keys.OpenFetching(ctx, m, time.Second)
	if o == (peer.Opened{}) {
		o = t.keys.Open(m)
	}
	v := viewMessage(m, o)
	t.lastSeq = m.Seq
	t.outMu.Lock()
	defer t.outMu.Unlock()
	if t.asJSON {
		return writeJSON(t.out, v)
	}
	printMessage(t.out, v, t.now())
	return nil
}

// note prints a status line on stderr (never in the --json stream).
func (t *tailer) note(format string, args ...any) {
	t.outMu.Lock()
	defer t.outMu.Unlock()
	fmt.Fprintf(t.errOut, format+"\n", args...)
}

// follow reads the topic's SSE stream until ctx ends, reconnecting after
// every break with Last-Event-ID = the newest seq printed.
func (t *tailer) follow(ctx context.Context) error {
	u := strings.TrimRight(t.s.mesh.Server, "/") + "/v1/topics/" + url.PathEscape(t.topic) + "/stream"
	c := sse.NewClient(u, sse.ClientMaxBufferSize(1<<20))
	c.Connection = t.hc
	c.Headers = map[string]string{"Authorization": "Bearer " + t.s.mesh.APIKey}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 200*time.Millisecond, 5*time.Second, 0
	c.ReconnectStrategy = backoff.WithContext(b, ctx)
	c.ResponseValidator = func(_ *sse.Client, resp *http.Response) error {
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		err := peer.Check(t.s.mesh.Server, nil, rawResponse{resp.StatusCode, body}, http.StatusOK)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return backoff.Permanent(topicHint(err, t.topic))
		}
		return err
	}
	var broken bool
	c.ReconnectNotify = func(err error, d time.Duration) {
		if !broken {
			broken = true
			t.note("stream interrupted (%v); reconnecting…", err)
		}
	}
	var ended error
	handle := func(ev *sse.Event) {
		if ended != nil {
			return
		}
		switch string(ev.Event) {
		case "message":
			var m client.Message
			if err := json.Unmarshal(ev.Data, &m); err != nil {
				t.note("skipping an unreadable event: %v", err)
				return
			}
			if err := t.show(ctx, &m); err != nil {
				ended = err
			}
		case "ready":
			if broken {
				broken = false
				t.note("reconnected; resumed after seq %d", t.lastSeq)
			}
		case "end":
			// The reason is a fixed code; reconnect says whether resuming
			// can work (shutdown, an outage) or not (revoked, archived…).
			end := struct {
				Reason    string `json:"reason"`
				Reconnect *bool  `json:"reconnect"`
			}{}
			_ = json.Unmarshal(ev.Data, &end)
			if end.Reconnect != nil && !*end.Reconnect {
				ended = streamRefused(end.Reason, t.topic)
				return
			}
			broken = true
			t.note("the broker ended the stream (%s); reconnecting…", end.Reason)
		}
	}
	for {
		c.LastEventID.Store([]byte(strconv.FormatInt(t.lastSeq, 10)))
		err := c.SubscribeRawWithContext(ctx, handle)
		switch {
		case ctx.Err() != nil:
			return nil //nolint:nilerr // stopped by a signal: a clean exit
		case ended != nil:
			return ended
		case err != nil:
			var pe *backoff.PermanentError
			if errors.As(err, &pe) {
				return pe.Err
			}
			return err
		}
		// The broker closed the response: resume.
		if !broken {
			broken = true
			t.note("stream closed by the broker; reconnecting…")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(b.NextBackOff()):
		}
	}
}

// streamRefused is a stream the broker ended for good, as a refusal (exit 2)
// that says what happened in words.
func streamRefused(code, topic string) error {
	status, what := http.StatusForbidden, "the stream was ended ("+code+")"
	switch code {
	case "credential_revoked":
		status, what = http.StatusUnauthorized, "this member or its API key was revoked"
	case "credential_expired":
		status, what = http.StatusUnauthorized, "the credential expired"
	case "access_lost":
		what = "you can no longer read #" + topic
	case "mesh_archived":
		status, what = http.StatusGone, "the mesh was archived"
	case "topic_archived":
		status, what = http.StatusGone, "#"+topic+" was archived"
	}
	return &peer.APIError{Status: status, Problem: client.Problem{Code: code, Title: what}}
}

// rawResponse adapts a plain status and body to peer.Response.
type rawResponse struct {
	status int
	body   []byte
}

func (r rawResponse) StatusCode() int { return r.status }
func (r rawResponse) GetBody() []byte { return r.body }
