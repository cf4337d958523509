package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// resolveHint turns "no such member" into a usage error with a next step.
func (s *session) resolveHint(err error, to string) error {
	var nm *peer.NoSuchMemberError
	if errors.As(err, &nm) && len(nm.Maybe) > 0 {
		return usagef("no member %s in mesh %s: did you mean %s?", to, s.mesh.Slug, strings.Join(nm.Maybe, " or "))
	}
	if errors.Is(err, peer.ErrNoSuchMember) {
		return usagef("no member %s in mesh %s: see `claudemesh peers`", to, s.mesh.Slug)
	}
	if errors.Is(err, peer.ErrNobodyOnline) {
		return usagef("%v", err)
	}
	return err
}

type sendOptions struct {
	app      *app
	io       ioStreams
	To       string
	Text     string
	Priority string
	JSON     bool
}

func (a *app) sendCommand() *cobra.Command {
	opts := &sendOptions{app: a}
	c := &cobra.Command{
		Use:   "send <@name|member-id|*> <text>",
		Short: "Send an end-to-end encrypted direct message (waits for the broker's ack)",
		Long: `Send a direct message, boxed on this machine for the recipient's key
(crypto_box). * sends one to every peer online now. The broker stores it
until the recipient acknowledges it; this command exits once it is stored.
Priority: now reaches a busy (working, dnd) peer at once; next and low wait
until it is idle.`,
		Example: "  claudemesh send @bob \"can you review #42?\"\n  claudemesh send '*' \"deploy in 5 minutes\" --priority now",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.To, opts.Text = streamsOf(cmd), args[0], args[1]
			return runSend(cmd.Context(), opts)
		},
	}
	c.Flags().StringVar(&opts.Priority, "priority", "next", "now, next or low")
	jsonFlag(c, &opts.JSON)
	return c
}

func runSend(ctx context.Context, opts *sendOptions) error {
	if !slices.Contains(peer.Priorities, opts.Priority) {
		return usagef("--priority must be now, next or low, got %q", opts.Priority)
	}
	if opts.Text == "" {
		return usagef("the message is empty")
	}
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	wc, err := s.mesh.DialWS(ctx, s.id, peer.NewSessionID("cli-send"), opts.app.env.HTTP)
	if err != nil {
		return err
	}
	defer wc.Close()
	sent, err := s.p.SendDirect(ctx, wc, opts.To, opts.Text, opts.Priority, "cli")
	if err != nil {
		return s.resolveHint(err, opts.To)
	}
	ack := sent.Ack
	if opts.JSON {
		return writeJSON(opts.io.Out, map[string]any{"to": ack.To, "ids": nonNil(ack.IDs), "replayed": ack.Replayed != nil && *ack.Replayed,
			"skipped": nonNil(ack.Skipped), "missing": nonNil(ack.Missing)})
	}
	if opts.To == "*" {
		fmt.Fprintf(opts.io.Out, "sent to %d peer(s)\n", len(ack.IDs))
		return nil
	}
	fmt.Fprintf(opts.io.Out, "sent to %s\n", sent.Label)
	return nil
}

// directView is a received direct message as --json prints it.
type directView struct {
	ID            string    `json:"id"`
	From          string    `json:"from"`
	FromMemberID  string    `json:"fromMemberId"`
	Priority      string    `json:"priority"`
	CreatedAt     time.Time `json:"createdAt"`
	Text          *string   `json:"text"`
	Undecryptable bool      `json:"undecryptable"`
	Attempt       int       `json:"attempt"`
}

type inboxOptions struct {
	app    *app
	io     ioStreams
	Follow bool
	Wait   time.Duration
	JSON   bool
}

func (a *app) inboxCommand() *cobra.Command {
	opts := &inboxOptions{app: a}
	c := &cobra.Command{
		Use:   "inbox",
		Short: "Receive your direct messages (drain the queue, or --follow)",
		Long: `Connect to the broker, print every direct message waiting for you,
decrypted, and acknowledge each one after printing it. Without --follow
it exits once nothing new arrived for --wait; with --follow it stays
connected and reconnects with backoff after any break.`,
		Example: "  claudemesh inbox\n  claudemesh inbox --follow --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runInbox(cmd.Context(), opts)
		},
	}
	c.Flags().BoolVar(&opts.Follow, "follow", false, "stay connected and print messages as they arrive")
	c.Flags().DurationVar(&opts.Wait, "wait", 2*time.Second, "without --follow: exit after this long with nothing new")
	jsonFlag(c, &opts.JSON)
	return c
}

func runInbox(ctx context.Context, opts *inboxOptions) error {
	if opts.Wait <= 0 {
		return usagef("--wait must be positive")
	}
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	ib := &inbox{s: s, opts: opts, seen: map[string]bool{}}
	return ib.run(ctx)
}

type inbox struct {
	s     *session
	opts  *inboxOptions
	seen  map[string]bool // ids printed by this process (pushes are at least once)
	count int
}

func (ib *inbox) run(ctx context.Context) error {
	session := peer.NewSessionID("cli-inbox")
	delay := 200 * time.Millisecond
	for {
		err := ib.once(ctx, session)
		if err == nil || ctx.Err() != nil {
			if !ib.opts.Follow && !ib.opts.JSON && ib.count == 0 {
				fmt.Fprintln(ib.opts.io.Out, "no messages")
			}
			return nil
		}
		var wr *peer.WSRefusedError
		if !ib.opts.Follow || errors.As(err, &wr) && wr.Code != wsproto.CloseSessionReplaced {
			return err
		}
		fmt.Fprintf(ib.opts.io.ErrOut, "connection lost (%v); reconnecting in %s\n", err, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// once runs one connection; nil means done (drained, or ctx ended).
func (ib *inbox) once(ctx context.Context, session string) error {
	wc, err := ib.s.mesh.DialWS(ctx, ib.s.id, session, ib.opts.app.env.HTTP)
	if err != nil {
		return err
	}
	defer wc.Close()
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !ib.opts.Follow {
			rctx, cancel = context.WithTimeout(ctx, ib.opts.Wait)
		}
		f, err := wc.Next(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || (!ib.opts.Follow && errors.Is(err, context.DeadlineExceeded)) {
				return nil
			}
			if code, reason := peer.CloseStatus(err); code >= 4000 {
				return &peer.WSRefusedError{Code: code, Reason: reason}
			}
			return &peer.NetworkError{Server: ib.s.mesh.Server, Err: err}
		}
		if f.Type != wsproto.TypePush {
			continue
		}
		p, err := peer.As[wsproto.Push](f)
		if err != nil {
			return err
		}
		if err := ib.print(ib.s.p.OpenPush(p)); err != nil {
			return err
		}
		// Ack with a ref and wait for the answer, so a message printed here
		// is never pushed again because the connection closed first.
		if _, err := peer.Ask[wsproto.Ack](ctx, ib.s.p, wc, &wsproto.AckPushes{Type: wsproto.TypeAck, IDs: []string{p.ID}}); err != nil {
			return err
		}
	}
}

func (ib *inbox) print(d peer.Direct) error {
	if ib.seen[d.ID] {
		return nil
	}
	ib.seen[d.ID] = true
	ib.count++
	v := directView{ID: d.ID, Priority: d.Priority, CreatedAt: d.CreatedAt, Attempt: d.Attempt, From: d.From.DisplayName,
		FromMemberID: d.From.ID, Undecryptable: d.Undecryptable}
	if !d.Undecryptable {
		v.Text = &d.Text
	}
	out := ib.opts.io.Out
	if ib.opts.JSON {
		return writeJSON(out, v)
	}
	body := "[cannot decrypt this message]"
	if v.Text != nil {
		body = oneLine(*v.Text)
	}
	prio := ""
	if v.Priority == "now" {
		prio = " (now)"
	}
	_, err := fmt.Fprintf(out, "%-8s @%s%s: %s\n", v.CreatedAt.Local().Format("15:04:05"), v.From, prio, body)
	return err
}

// nonNil keeps --json arrays arrays.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
