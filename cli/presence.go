package cli

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// peerView is a connected session as --json prints it.
type peerView struct {
	MemberID     string `json:"memberId"`
	DisplayName  string `json:"displayName"`
	SessionID    string `json:"sessionId"`
	Status       string `json:"status"`
	StatusSource string `json:"statusSource"`
	Summary      string `json:"summary"`
	Since        string `json:"since"`
	ConnectedAt  string `json:"connectedAt"`
	Cwd          string `json:"cwd"`
}

const rfc3339 = "2006-01-02T15:04:05Z07:00"

type peersOptions struct {
	app  *app
	io   ioStreams
	JSON bool
}

func (a *app) peersCommand() *cobra.Command {
	opts := &peersOptions{app: a}
	c := &cobra.Command{
		Use:     "peers",
		Short:   "Show who is online: status, summary, since when",
		Example: "  claudemesh peers\n  claudemesh peers --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runPeers(cmd.Context(), opts)
		},
	}
	jsonFlag(c, &opts.JSON)
	return c
}

func runPeers(ctx context.Context, opts *peersOptions) error {
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	peers, err := s.p.ListPeers(ctx)
	if err != nil {
		return err
	}
	out := opts.io.Out
	if opts.JSON {
		for _, p := range peers {
			v := peerView{MemberID: p.MemberId.String(), DisplayName: p.DisplayName, SessionID: p.SessionId, Status: string(p.Status),
				StatusSource: string(p.StatusSource), Summary: p.Summary, Since: p.StatusAt.UTC().Format(rfc3339),
				ConnectedAt: p.ConnectedAt.UTC().Format(rfc3339), Cwd: p.Cwd}
			if err := writeJSON(out, v); err != nil {
				return err
			}
		}
		return nil
	}
	if len(peers) == 0 {
		fmt.Fprintln(out, "nobody is online")
		return nil
	}
	now := opts.app.env.Now()
	t := newTable(out, "PEER", "STATUS", "SINCE", "SUMMARY", "SESSION")
	for _, p := range peers {
		name := "@" + p.DisplayName
		if p.MemberId.String() == s.mesh.MemberID {
			name += " (you)"
		}
		t.row(name, string(p.Status), ago(now, p.StatusAt), orDash(oneLine(p.Summary)), p.SessionId)
	}
	return t.flush()
}

// statusOptions set this directory's session's status (status set, summary).
type statusOptions struct {
	app     *app
	io      ioStreams
	Status  string  // "" with a Summary: keep the session's current status
	Summary *string // nil: keep it
	// Cwd names the session (its directory; the working directory when "").
	Cwd string
}

func (a *app) statusCommand() *cobra.Command {
	c := &cobra.Command{
		Use:     "status",
		Short:   "Set the status of your Claude Code session in this directory",
		Example: "  claudemesh status set working \"refactoring ws/\"\n  claudemesh status set dnd",
	}
	opts := &statusOptions{app: a}
	set := &cobra.Command{
		Use:   "set <idle|working|dnd> [summary]",
		Short: "Set your session's status (idle gets every message; working and dnd only priority now)",
		Long: `Set the status of your peer session running in the current directory
(the one your Claude Code connected from). If it is not connected yet the
broker keeps the status for 10 s and applies it when the session says hello.
The broker reports this like a hook does, so a hook cannot clear dnd.`,
		Example: "  claudemesh status set working \"running the test suite\"\n  claudemesh status set idle",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Status = streamsOf(cmd), args[0]
			if len(args) == 2 {
				opts.Summary = &args[1]
			}
			if !slices.Contains([]string{"idle", "working", "dnd"}, opts.Status) {
				return usagef("status must be idle, working or dnd, got %q", opts.Status)
			}
			return runStatus(cmd.Context(), opts)
		},
	}
	c.AddCommand(set)
	return c
}

func (a *app) summaryCommand() *cobra.Command {
	opts := &statusOptions{app: a}
	return &cobra.Command{
		Use:     "summary <text>",
		Short:   "Say what your session in this directory is doing (keeps its status)",
		Example: "  claudemesh summary \"reviewing PR 42\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Summary = streamsOf(cmd), &args[0]
			return runStatus(cmd.Context(), opts)
		},
	}
}

// runStatus sends POST /hook/set-status for this directory's session; a
// CLI command is not a session itself (see docs/DESIGN.md).
func runStatus(ctx context.Context, opts *statusOptions) error {
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	cwd := opts.Cwd
	if cwd == "" {
		if cwd, err = os.Getwd(); err != nil {
			return err
		}
	}
	status := opts.Status
	if status == "" { // keep the session's current status: find it among the peers
		status = "idle"
		peers, err := s.p.ListPeers(ctx)
		if err != nil {
			return err
		}
		for _, p := range peers {
			if p.MemberId.String() == s.mesh.MemberID && p.Cwd == cwd {
				status = string(p.Status)
			}
		}
	}
	summary := opts.Summary
	res, err := s.p.ReportStatus(ctx, status, summary, os.Getppid(), cwd)
	if err != nil {
		return err
	}
	out := opts.io.Out
	switch r := string(res.Result); {
	case r == "stashed":
		fmt.Fprintf(out, "no session of yours is connected from %s yet: the broker keeps %s for 10 s\n", cwd, status)
	case r == "unchanged" && res.Session != nil:
		fmt.Fprintf(out, "unchanged: your session stays %s (only a manual status lifts dnd)\n", res.Session.Status)
	default:
		msg := "status " + status
		if summary != nil {
			msg += ": " + strings.TrimSpace(*summary)
		}
		fmt.Fprintln(out, msg)
	}
	return nil
}
