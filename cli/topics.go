package cli

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
)

func (a *app) topicCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "topic",
		Short: "Encrypted topics: list, create, join, post, tail, history",
		Example: `  claudemesh topic list
  claudemesh topic post deploys "v1.4 is out"
  claudemesh topic tail deploys`,
	}
	c.AddCommand(a.topicListCommand(), a.topicCreateCommand(), a.topicJoinCommand(), a.topicLeaveCommand(),
		a.topicMembersCommand(), a.topicReadCommand(), a.topicHistoryCommand(), a.topicPostCommand(), a.topicTailCommand())
	return c
}

// topicView is a topic as --json prints it.
type topicView struct {
	Name        string  `json:"name"`
	ID          string  `json:"id"`
	Description string  `json:"description"`
	Visibility  string  `json:"visibility"`
	Keyed       bool    `json:"keyed"`
	Joined      bool    `json:"joined"`
	Role        *string `json:"role"`
	Unread      *int64  `json:"unread"`
	LastReadSeq *int64  `json:"lastReadSeq"`
}

type topicListOptions struct {
	app  *app
	io   ioStreams
	JSON bool
}

func (a *app) topicListCommand() *cobra.Command {
	opts := &topicListOptions{app: a}
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the topics you can see",
		Example: "  claudemesh topic list\n  claudemesh topic list --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runTopicList(cmd.Context(), opts)
		},
	}
	jsonFlag(c, &opts.JSON)
	return c
}

func runTopicList(ctx context.Context, opts *topicListOptions) error {
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	topics, err := s.p.ListTopics(ctx)
	if err != nil {
		return err
	}
	var views []topicView
	for _, t := range topics {
		v := topicView{Name: t.Name, ID: t.Id.String(), Description: t.Description, Visibility: string(t.Visibility),
			Keyed: t.Keyed, Joined: t.Joined, Unread: t.Unread, LastReadSeq: t.LastReadSeq}
		if t.Role != nil {
			role := string(*t.Role)
			v.Role = &role
		}
		views = append(views, v)
	}
	out := opts.io.Out
	if opts.JSON {
		for _, v := range views {
			if err := writeJSON(out, v); err != nil {
				return err
			}
		}
		return nil
	}
	t := newTable(out, "TOPIC", "VISIBILITY", "ENCRYPTED", "YOU", "UNREAD", "DESCRIPTION")
	for _, v := range views {
		you, unread := "-", "-"
		if v.Role != nil {
			you = *v.Role
		}
		if v.Unread != nil {
			unread = strconv.FormatInt(*v.Unread, 10)
		}
		enc := "no"
		if v.Keyed {
			enc = "yes"
		}
		t.row("#"+v.Name, v.Visibility, enc, you, unread, orDash(oneLine(v.Description)))
	}
	return t.flush()
}

type topicCreateOptions struct {
	app         *app
	io          ioStreams
	Description string
	Visibility  string
	JSON        bool
	Name        string
}

func (a *app) topicCreateCommand() *cobra.Command {
	opts := &topicCreateOptions{app: a}
	c := &cobra.Command{
		Use:     "create <name>",
		Short:   "Create a topic (you become its lead)",
		Example: "  claudemesh topic create deploys --description \"release chatter\"\n  claudemesh topic create incident-42 --visibility private",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io = streamsOf(cmd)
			opts.Name = args[0]
			return runTopicCreate(cmd.Context(), opts)
		},
	}
	c.Flags().StringVar(&opts.Description, "description", "", "what the topic is for")
	c.Flags().StringVar(&opts.Visibility, "visibility", "public", "public (any member may join) or private (added by a lead)")
	jsonFlag(c, &opts.JSON)
	return c
}

func runTopicCreate(ctx context.Context, opts *topicCreateOptions) error {
	if !slices.Contains([]string{"public", "private"}, opts.Visibility) {
		return usagef("--visibility must be public or private, got %q", opts.Visibility)
	}
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Name)
	req := client.CreateTopicRequest{Name: name, Visibility: ptr(client.CreateTopicRequestVisibility(opts.Visibility))}
	if opts.Description != "" {
		req.Description = &opts.Description
	}
	r, err := s.api.CreateTopicWithResponse(ctx, req)
	if err := s.check(err, r, http.StatusCreated); err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.io.Out, map[string]any{"name": r.JSON201.Name, "id": r.JSON201.Id, "visibility": r.JSON201.Visibility})
	}
	fmt.Fprintf(opts.io.Out, "created #%s (%s); it is encrypted from the first post\n", r.JSON201.Name, r.JSON201.Visibility)
	return nil
}

type topicJoinOptions struct {
	app   *app
	io    ioStreams
	Topic string
}

func (a *app) topicJoinCommand() *cobra.Command {
	opts := &topicJoinOptions{app: a}
	return &cobra.Command{
		Use:     "join <name>",
		Short:   "Join a public topic",
		Example: "  claudemesh topic join deploys",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io = streamsOf(cmd)
			opts.Topic = args[0]
			return runTopicJoin(cmd.Context(), opts)
		},
	}
}

func runTopicJoin(ctx context.Context, opts *topicJoinOptions) error {
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Topic)
	r, err := s.api.JoinTopicWithResponse(ctx, name)
	if err := s.check(err, r, http.StatusOK, http.StatusCreated); err != nil {
		return topicHint(err, name)
	}
	fmt.Fprintf(opts.io.Out, "joined #%s\n", name)
	return nil
}

type topicLeaveOptions struct {
	app   *app
	io    ioStreams
	Topic string
}

func (a *app) topicLeaveCommand() *cobra.Command {
	opts := &topicLeaveOptions{app: a}
	return &cobra.Command{
		Use:     "leave <name>",
		Short:   "Leave a topic (your copy of its key is deleted)",
		Example: "  claudemesh topic leave deploys",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io = streamsOf(cmd)
			opts.Topic = args[0]
			return runTopicLeave(cmd.Context(), opts)
		},
	}
}

func runTopicLeave(ctx context.Context, opts *topicLeaveOptions) error {
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Topic)
	me, err := uuid.Parse(s.mesh.MemberID)
	if err != nil {
		return fmt.Errorf("member id in the config: %w", err)
	}
	r, err := s.api.RemoveTopicMemberWithResponse(ctx, name, me)
	if err := s.check(err, r, http.StatusNoContent); err != nil {
		return topicHint(err, name)
	}
	fmt.Fprintf(opts.io.Out, "left #%s\n", name)
	return nil
}

type topicMembersOptions struct {
	app   *app
	io    ioStreams
	JSON  bool
	Topic string
}

func (a *app) topicMembersCommand() *cobra.Command {
	opts := &topicMembersOptions{app: a}
	c := &cobra.Command{
		Use:     "members <name>",
		Short:   "List a topic's members",
		Example: "  claudemesh topic members deploys --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io = streamsOf(cmd)
			opts.Topic = args[0]
			return runTopicMembers(cmd.Context(), opts)
		},
	}
	jsonFlag(c, &opts.JSON)
	return c
}

func runTopicMembers(ctx context.Context, opts *topicMembersOptions) error {
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	name := peer.TopicName(opts.Topic)
	var items []client.TopicMember
	var cursor *string
	for {
		r, err := s.api.ListTopicMembersWithResponse(ctx, name, &client.ListTopicMembersParams{Limit: ptr(client.Limit(200)), Cursor: cursor})
		if err := s.check(err, r, http.StatusOK); err != nil {
			return topicHint(err, name)
		}
		items = append(items, r.JSON200.Items...)
		if !r.JSON200.HasMore || r.JSON200.NextCursor == nil {
			break
		}
		cursor = r.JSON200.NextCursor
	}
	out := opts.io.Out
	if opts.JSON {
		for _, m := range items {
			if err := writeJSON(out, map[string]any{"memberId": m.MemberId, "displayName": m.DisplayName, "role": m.Role,
				"pubkey": m.Pubkey, "joinedAt": m.JoinedAt, "lastReadSeq": m.LastReadSeq}); err != nil {
				return err
			}
		}
		return nil
	}
	now := opts.app.env.Now()
	t := newTable(out, "MEMBER", "ROLE", "JOINED", "READ UP TO")
	for _, m := range items {
		t.row("@"+m.DisplayName, string(m.Role), ago(now, m.JoinedAt), strconv.FormatInt(m.LastReadSeq, 10))
	}
	return t.flush()
}

type topicReadOptions struct {
	app   *app
	io    ioStreams
	Topic string
	Seq   *int64 // nil: the topic's newest message
}

func (a *app) topicReadCommand() *cobra.Command {
	opts := &topicReadOptions{app: a}
	return &cobra.Command{
		Use:     "read <name> [seq]",
		Short:   "Mark a topic read (up to seq, default: its newest message)",
		Example: "  claudemesh topic read deploys\n  claudemesh topic read deploys 1042",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Topic = streamsOf(cmd), args[0]
			if len(args) == 2 {
				n, err := strconv.ParseInt(args[1], 10, 64)
				if err != nil || n < 0 {
					return usagef("seq must be a non-negative integer, got %q", args[1])
				}
				opts.Seq = &n
			}
			return runTopicRead(cmd.Context(), opts)
		},
	}
}

func runTopicRead(ctx context.Context, opts *topicReadOptions) error {
	name := peer.TopicName(opts.Topic)
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	seq := opts.Seq
	if seq == nil {
		r, err := s.api.ListMessagesWithResponse(ctx, name, &client.ListMessagesParams{Limit: ptr(client.Limit(1))})
		if err := s.check(err, r, http.StatusOK); err != nil {
			return topicHint(err, name)
		}
		if len(r.JSON200.Items) == 0 {
			fmt.Fprintf(opts.io.Out, "#%s has no messages\n", name)
			return nil
		}
		seq = &r.JSON200.Items[0].Seq
	}
	r, err := s.api.MarkTopicReadWithResponse(ctx, name, client.MarkTopicReadRequest{Seq: seq})
	if err := s.check(err, r, http.StatusOK); err != nil {
		return topicHint(err, name)
	}
	fmt.Fprintf(opts.io.Out, "#%s read up to %d\n", name, r.JSON200.LastReadSeq)
	return nil
}

// topicHint adds the next step for topic-level refusals.
func topicHint(err error, topic string) error {
	var ae *peer.APIError
	if !asAPI(err, &ae) {
		return err
	}
	switch ae.Code() {
	case "not_topic_member":
		return hint(err, "not a member of #%s: run `claudemesh topic join %s`", topic, topic)
	case "topic_not_found":
		return hint(err, "no topic #%s you can see: run `claudemesh topic list`, or create it with `claudemesh topic create %s`", topic, topic)
	case "observer":
		return hint(err, "observers of #%s may read but not post: ask a topic lead", topic)
	case "topic_archived":
		return hint(err, "#%s is archived: it takes no new messages", topic)
	case "seal_not_found":
		return hint(err, "no key for you in #%s yet: a member holding it seals it for you while their `claudemesh topic tail %s` runs; try again then", topic, topic)
	}
	return err
}
