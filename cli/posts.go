package cli

// topic post and topic history: the commands that write and read a
// topic's messages (topics.go manages the topics themselves).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
)

type topicHistoryOptions struct {
	app   *app
	io    ioStreams
	Topic string
	Limit int
	JSON  bool
}

func (a *app) topicHistoryCommand() *cobra.Command {
	opts := &topicHistoryOptions{app: a}
	c := &cobra.Command{
		Use:     "history <name>",
		Short:   "Show a topic's recent messages, decrypted",
		Example: "  claudemesh topic history deploys\n  claudemesh topic history deploys --limit 200 --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Topic = streamsOf(cmd), args[0]
			return runTopicHistory(cmd.Context(), opts)
		},
	}
	c.Flags().IntVar(&opts.Limit, "limit", 50, "how many of the newest messages (1-200)")
	jsonFlag(c, &opts.JSON)
	return c
}

func runTopicHistory(ctx context.Context, opts *topicHistoryOptions) error {
	if opts.Limit < 1 || opts.Limit > 200 {
		return usagef("--limit must be 1 to 200, got %d", opts.Limit)
	}
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Topic)
	r, err := s.api.ListMessagesWithResponse(ctx, name, &client.ListMessagesParams{Limit: ptr(opts.Limit)})
	if err := s.check(err, r, http.StatusOK); err != nil {
		return topicHint(err, name)
	}
	keys := peer.NewTopicKeys(s.p, name)
	items := r.JSON200.Items
	slices.Reverse(items) // newest first → oldest first
	out := opts.io.Out
	now := opts.app.env.Now()
	pending := 0
	for i := range items {
		o, err := keys.OpenFetching(ctx, &items[i], time.Hour)
		if err != nil {
			return topicHint(err, name)
		}
		v := viewMessage(&items[i], o)
		if v.Pending {
			pending++
		}
		if opts.JSON {
			if err := writeJSON(out, v); err != nil {
				return err
			}
			continue
		}
		printMessage(out, v, now)
	}
	if !opts.JSON && len(items) == 0 {
		fmt.Fprintf(out, "#%s has no messages yet\n", name)
	}
	if pending > 0 {
		fmt.Fprintf(opts.io.ErrOut, "%d message(s) are pending: nobody has sealed #%s's key for you yet (a key holder's `claudemesh topic tail %s` does it)\n", pending, name, name)
	}
	return nil
}

type topicPostOptions struct {
	app     *app
	io      ioStreams
	Topic   string
	Text    string // "-" reads stdin
	ReplyTo string
	JSON    bool
}

func (a *app) topicPostCommand() *cobra.Command {
	opts := &topicPostOptions{app: a}
	c := &cobra.Command{
		Use:   "post <name> <text|->",
		Short: "Post an end-to-end encrypted message to a topic (- reads stdin)",
		Long: `Post a message, encrypted on this machine with the topic key (body v2).
On a topic nobody has keyed yet, this claims the key first. On a keyed
topic whose key nobody has sealed for you yet it sends nothing and exits 2.`,
		Example: "  claudemesh topic post deploys \"v1.4 is out\"\n  git log -1 | claudemesh topic post deploys -\n  claudemesh topic post deploys \"agreed\" --reply-to 0193a1b2-...",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Topic, opts.Text = streamsOf(cmd), args[0], args[1]
			return runTopicPost(cmd.Context(), opts)
		},
	}
	c.Flags().StringVar(&opts.ReplyTo, "reply-to", "", "the id of the message this answers")
	jsonFlag(c, &opts.JSON)
	return c
}

func runTopicPost(ctx context.Context, opts *topicPostOptions) error {
	text := opts.Text
	if text == "-" {
		b, err := io.ReadAll(io.LimitReader(opts.io.In, 1<<20))
		if err != nil {
			return fmt.Errorf("read stdin: %w", err)
		}
		text = strings.TrimRight(string(b), "\n")
	}
	if strings.TrimSpace(text) == "" {
		return usagef("the message is empty")
	}
	var reply *uuid.UUID
	if opts.ReplyTo != "" {
		u, err := uuid.Parse(opts.ReplyTo)
		if err != nil {
			return usagef("--reply-to must be a message id, got %q", opts.ReplyTo)
		}
		reply = &u
	}
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Topic)
	m, err := peer.NewTopicKeys(s.p, name).Post(ctx, text, peer.PostOptions{ReplyTo: reply, ClientPrefix: "cli"})
	if err != nil {
		return topicHint(err, name)
	}
	if opts.JSON {
		return writeJSON(opts.io.Out, map[string]any{"id": m.Id, "seq": m.Seq, "topic": m.Topic})
	}
	fmt.Fprintf(opts.io.Out, "posted to #%s (seq %d)\n", m.Topic, m.Seq)
	return nil
}
