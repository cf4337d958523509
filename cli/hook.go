package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/claudecode"
)

// Hook time limits: a hook must never hold Claude Code up. The whole
// hook, stdin included, ends within hookBudget of its start, so even a
// slow start, a stdin nobody closes and a broker that never answers stay
// well inside the 2 s a hook may take.
const (
	hookStdinWait = 500 * time.Millisecond
	hookCallLimit = time.Second
	hookBudget    = 1200 * time.Millisecond
)

func (a *app) hookCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "hook",
		Short: "Claude Code hooks: report the session's status to the broker (never blocks, always exits 0)",
		Long: `Run by Claude Code hooks (see ` + "`claudemesh install`" + `). Each reads the hook
JSON on stdin for at most 0.5 s, reports the status for the session in its
cwd with POST /hook/set-status (at most 1 s), and exits 0 whatever happens;
a failure is one line on stderr.`,
		Example: `  # ~/.claude/settings.json (claudemesh install --write adds these)
  "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "claudemesh hook idle"}]}]}
  echo '{"hook_event_name":"Stop","cwd":"'$PWD'"}' | claudemesh hook set-status`,
	}
	fixed := func(use, status, short string) *cobra.Command {
		opts := &hookOptions{app: a, Status: status}
		return &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, Example: "  claudemesh hook " + use + " < hook.json",
			RunE: func(cmd *cobra.Command, _ []string) error {
				opts.io = streamsOf(cmd)
				runHook(cmd.Context(), opts)
				return nil
			}}
	}
	byEvent := &hookOptions{app: a}
	c.AddCommand(fixed("working", claudecode.Working, "Report the session as working (for the UserPromptSubmit hook)"),
		fixed("idle", claudecode.Idle, "Report the session as idle (for the Stop hook)"),
		&cobra.Command{Use: "set-status", Short: "Report the status the hook event means: UserPromptSubmit → working, Stop → idle, others ignored",
			Args: cobra.NoArgs, Example: "  claudemesh hook set-status < hook.json",
			RunE: func(cmd *cobra.Command, _ []string) error {
				byEvent.io = streamsOf(cmd)
				runHook(cmd.Context(), byEvent)
				return nil
			}})
	return c
}

// hookOptions: a hook's fixed status, or "" to take it from the event.
type hookOptions struct {
	app    *app
	io     ioStreams
	Status string
}

// runHook reads the hook payload and posts the status, all within
// hookBudget; every failure is a line on stderr only (a hook always
// exits 0).
func runHook(ctx context.Context, opts *hookOptions) {
	ctx, cancel := context.WithTimeout(ctx, hookBudget)
	defer cancel()
	p := claudecode.ReadHookPayload(ctx, opts.io.In, hookStdinWait)
	status := opts.Status
	if status == "" {
		st, ok := claudecode.StatusForEvent(p.HookEventName)
		if !ok {
			return
		}
		status = st
	}
	a := opts.app
	cwd := p.Cwd
	if cwd == "" {
		cwd = a.env.Getenv("CLAUDE_PROJECT_DIR")
	}
	if cwd == "" {
		cwd, _ = os.Getwd()
	}
	hc := *a.env.HTTP
	hc.Timeout = hookCallLimit // also bounds a broker that accepts and never answers
	s, err := a.home.Open(a.mesh, &hc)
	if err != nil {
		fmt.Fprintf(opts.io.ErrOut, "claudemesh hook: %v\n", err)
		return
	}
	ctx, cancel = context.WithTimeout(ctx, hookCallLimit)
	defer cancel()
	if _, err := s.ReportStatus(ctx, status, nil, os.Getppid(), cwd); err != nil {
		fmt.Fprintf(opts.io.ErrOut, "claudemesh hook: status %s not reported: %v\n", status, err)
	}
}
