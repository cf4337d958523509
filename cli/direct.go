package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/ws"
)

// frameError is an `error` frame from /ws: the broker refused a request.
func frameError(f *ws.Frame) error {
	return &peer.APIError{Status: http.StatusBadRequest, Problem: client.Problem{Code: f.Code, Title: f.Message, Detail: &f.Message}}
}

// resolveMember finds a member by @name, id or pubkey among the mesh's members.
func (s *session) resolveMember(ctx context.Context, to string) (client.Member, error) {
	m, err := s.p.ResolveMember(ctx, to)
	if errors.Is(err, peer.ErrNoSuchMember) {
		return m, usagef("no member %s in mesh %s: see `claudemesh peers`", to, s.mesh.Slug)
	}
	return m, err
}

func (a *app) sendCommand() *cobra.Command {
	var priority string
	var asJSON bool
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
			if !slices.Contains([]string{"now", "next", "low"}, priority) {
				return usagef("--priority must be now, next or low, got %q", priority)
			}
			to, text := args[0], args[1]
			if text == "" {
				return usagef("the message is empty")
			}
			s, err := a.session()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var frame map[string]any
			var rcpt client.Member
			if to != "*" {
				if rcpt, err = s.resolveMember(ctx, to); err != nil {
					return err
				}
				frame, err = ws.SealedSend(s.id, rcpt.Id.String(), rcpt.Pubkey, []byte(text), priority, newClientID(), "")
				if err != nil {
					return err
				}
			}
			wc, err := s.mesh.DialWS(ctx, s.id, peer.NewSessionID("cli-send"), a.env.HTTP)
			if err != nil {
				return err
			}
			defer wc.Close()
			if to == "*" {
				if frame, err = broadcastFrame(ctx, wc, s, []byte(text), priority); err != nil {
					return err
				}
			}
			ack, err := wc.Call(ctx, frame)
			if err != nil {
				return &peer.NetworkError{Server: s.mesh.Server, Err: err}
			}
			if ack.Type == ws.TypeError {
				return frameError(ack)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), map[string]any{"to": ack.To, "ids": nonNil(ack.IDs), "replayed": ack.Replayed != nil && *ack.Replayed,
					"skipped": nonNil(ack.Skipped), "missing": nonNil(ack.Missing)})
			}
			if to == "*" {
				fmt.Fprintf(cmd.OutOrStdout(), "sent to %d peer(s)\n", len(ack.IDs))
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "sent to @%s\n", rcpt.DisplayName)
			return nil
		},
	}
	c.Flags().StringVar(&priority, "priority", "next", "now, next or low")
	jsonFlag(c, &asJSON)
	return c
}

// broadcastFrame boxes the text once for every other online peer.
func broadcastFrame(ctx context.Context, wc *ws.Client, s *session, text []byte, priority string) (map[string]any, error) {
	f, err := wc.Call(ctx, map[string]any{"type": ws.TypeListPeers})
	if err != nil {
		return nil, &peer.NetworkError{Server: s.mesh.Server, Err: err}
	}
	if f.Type == ws.TypeError {
		return nil, frameError(f)
	}
	var envs []map[string]string
	seen := map[string]bool{s.mesh.MemberID: true}
	for _, p := range f.Peers {
		if seen[p.MemberID] || p.DisconnectedAt != nil {
			continue
		}
		seen[p.MemberID] = true
		ct, nonce, err := meshcrypto.SealDirect(text, s.id, p.Pubkey)
		if err != nil {
			continue
		}
		envs = append(envs, map[string]string{"to": p.MemberID, "nonce": nonce, "ciphertext": ct})
	}
	if len(envs) == 0 {
		return nil, usagef("no other peer is online in mesh %s", s.mesh.Slug)
	}
	return map[string]any{"type": ws.TypeSend, "to": "*", "priority": priority, "clientMessageId": newClientID(), "envelopes": envs}, nil
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

func (a *app) inboxCommand() *cobra.Command {
	var follow, asJSON bool
	var quiet time.Duration
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
			if quiet <= 0 {
				return usagef("--wait must be positive")
			}
			s, err := a.session()
			if err != nil {
				return err
			}
			ib := &inbox{s: s, a: a, asJSON: asJSON, seen: map[string]bool{}, out: cmd}
			return ib.run(cmd.Context(), follow, quiet)
		},
	}
	c.Flags().BoolVar(&follow, "follow", false, "stay connected and print messages as they arrive")
	c.Flags().DurationVar(&quiet, "wait", 2*time.Second, "without --follow: exit after this long with nothing new")
	jsonFlag(c, &asJSON)
	return c
}

type inbox struct {
	s      *session
	a      *app
	asJSON bool
	seen   map[string]bool // ids printed by this process (pushes are at least once)
	out    *cobra.Command
	count  int
}

func (ib *inbox) run(ctx context.Context, follow bool, quiet time.Duration) error {
	session := peer.NewSessionID("cli-inbox")
	delay := 200 * time.Millisecond
	for {
		err := ib.once(ctx, session, follow, quiet)
		if err == nil || ctx.Err() != nil {
			if !follow && !ib.asJSON && ib.count == 0 {
				fmt.Fprintln(ib.out.OutOrStdout(), "no messages")
			}
			return nil
		}
		var wr *peer.WSRefusedError
		if !follow || errors.As(err, &wr) && wr.Code != 4409 {
			return err
		}
		fmt.Fprintf(ib.out.ErrOrStderr(), "connection lost (%v); reconnecting in %s\n", err, delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// once runs one connection; nil means done (drained, or ctx ended).
func (ib *inbox) once(ctx context.Context, session string, follow bool, quiet time.Duration) error {
	wc, err := ib.s.mesh.DialWS(ctx, ib.s.id, session, ib.a.env.HTTP)
	if err != nil {
		return err
	}
	defer wc.Close()
	for {
		rctx, cancel := ctx, context.CancelFunc(func() {})
		if !follow {
			rctx, cancel = context.WithTimeout(ctx, quiet)
		}
		f, err := wc.Next(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil || (!follow && errors.Is(err, context.DeadlineExceeded)) {
				return nil
			}
			if code, reason := ws.CloseStatus(err); code >= 4000 {
				return &peer.WSRefusedError{Code: int(code), Reason: reason}
			}
			return &peer.NetworkError{Server: ib.s.mesh.Server, Err: err}
		}
		if f.Type != ws.TypePush {
			continue
		}
		if err := ib.print(f); err != nil {
			return err
		}
		// Ack with a ref and wait for the answer, so a message printed here
		// is never pushed again because the connection closed first.
		ack, err := wc.Call(ctx, map[string]any{"type": ws.TypeAck, "ids": []string{f.ID}})
		if err != nil {
			return &peer.NetworkError{Server: ib.s.mesh.Server, Err: err}
		}
		if ack.Type == ws.TypeError {
			return frameError(ack)
		}
	}
}

func (ib *inbox) print(f *ws.Frame) error {
	if ib.seen[f.ID] {
		return nil
	}
	ib.seen[f.ID] = true
	ib.count++
	v := directView{ID: f.ID, Priority: f.Priority, CreatedAt: f.CreatedAt, Attempt: f.Attempt}
	if f.From != nil {
		v.From, v.FromMemberID = f.From.DisplayName, f.From.ID
		if b, err := meshcrypto.OpenDirect(f.Ciphertext, f.Nonce, ib.s.id, f.From.Pubkey); err == nil {
			t := string(b)
			v.Text = &t
		}
	}
	v.Undecryptable = v.Text == nil
	out := ib.out.OutOrStdout()
	if ib.asJSON {
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
