package cli

import (
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

func (a *app) peersCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "peers",
		Short:   "Show who is online: status, summary, since when",
		Example: "  claudemesh peers\n  claudemesh peers --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session()
			if err != nil {
				return err
			}
			peers, err := s.p.ListPeers(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
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
			now := a.env.Now()
			t := newTable(out, "PEER", "STATUS", "SINCE", "SUMMARY", "SESSION")
			for _, p := range peers {
				name := "@" + p.DisplayName
				if p.MemberId.String() == s.mesh.MemberID {
					name += " (you)"
				}
				t.row(name, string(p.Status), ago(now, p.StatusAt), orDash(oneLine(p.Summary)), p.SessionId)
			}
			return t.flush()
		},
	}
	jsonFlag(c, &asJSON)
	return c
}

func (a *app) statusCommand() *cobra.Command {
	c := &cobra.Command{
		Use:     "status",
		Short:   "Set the status of your Claude Code session in this directory",
		Example: "  claudemesh status set working \"refactoring ws/\"\n  claudemesh status set dnd",
	}
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
			st := args[0]
			if !slices.Contains([]string{"idle", "working", "dnd"}, st) {
				return usagef("status must be idle, working or dnd, got %q", st)
			}
			var summary *string
			if len(args) == 2 {
				summary = &args[1]
			}
			return a.reportStatus(cmd, st, summary)
		},
	}
	c.AddCommand(set)
	return c
}

func (a *app) summaryCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "summary <text>",
		Short:   "Say what your session in this directory is doing (keeps its status)",
		Example: "  claudemesh summary \"reviewing PR 42\"",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session()
			if err != nil {
				return err
			}
			// Keep the session's current status: find it among the peers.
			cwd, _ := os.Getwd()
			st := "idle"
			peers, err := s.p.ListPeers(cmd.Context())
			if err != nil {
				return err
			}
			for _, p := range peers {
				if p.MemberId.String() == s.mesh.MemberID && p.Cwd == cwd {
					st = string(p.Status)
				}
			}
			return a.reportStatus(cmd, st, &args[0])
		},
	}
}

// reportStatus sends POST /hook/set-status for this directory's session.
func (a *app) reportStatus(cmd *cobra.Command, status string, summary *string) error {
	s, err := a.session()
	if err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	res, err := s.p.ReportStatus(cmd.Context(), status, summary, os.Getppid(), cwd)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
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
