package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/claudecode"
)

func (a *app) claudePaths() (claudecode.Paths, error) {
	home, err := a.userHome()
	if err != nil {
		return claudecode.Paths{}, err
	}
	return claudecode.DefaultPaths(home, a.home.Dir), nil
}

// printChanges lists edits as "- " and notes (what is left alone, where
// a backup is) as "= ", grouped by file.
func printChanges(w io.Writer, cs []claudecode.Change) {
	last := ""
	for _, c := range cs {
		if c.File != last {
			fmt.Fprintf(w, "%s:\n", c.File)
			last = c.File
		}
		mark := "-"
		if c.Note {
			mark = "="
		}
		fmt.Fprintf(w, "  %s %s\n", mark, c.What)
	}
}

type installOptions struct {
	app     *app
	io      ioStreams
	Write   bool
	NoHooks bool
}

// reportChanges prints what install or uninstall (verb) did with write,
// or would do without it; unchanged says why there was nothing to do, and
// after (if any) what to do once the changes are written.
func reportChanges(out io.Writer, cs []claudecode.Change, write bool, verb, unchanged, after string) {
	switch {
	case !claudecode.Changed(cs):
		printChanges(out, cs)
		fmt.Fprintln(out, unchanged+": nothing to do")
	case write:
		fmt.Fprintln(out, verb+"ed:")
		printChanges(out, cs)
		if after != "" {
			fmt.Fprintln(out, after)
		}
	default:
		fmt.Fprintf(out, "claudemesh %s would:\n", verb)
		printChanges(out, cs)
		fmt.Fprintf(out, "run `claudemesh %s --write` to apply\n", verb)
	}
}

func (a *app) installCommand() *cobra.Command {
	opts := &installOptions{app: a}
	c := &cobra.Command{
		Use:   "install",
		Short: "Wire claudemesh into Claude Code: the MCP server, the status hooks, tool permissions and a skill",
		Long: `Show what connecting Claude Code to the mesh takes, and with --write do it:
  ~/.claude.json           mcpServers.claudemesh = {"command": "claudemesh", "args": ["mcp"]}
  ~/.claude/settings.json  UserPromptSubmit and Stop hooks running ` + "`claudemesh hook working|idle`" + `,
                           and "mcp__claudemesh__*" in permissions.allow
  ~/.claude/skills/claudemesh/SKILL.md  when and how the model uses the tools
The files are edited in place: every byte install does not change (layout,
key order, escapes) stays. An existing file is backed up once, before the
first change (<file>.claudemesh-backup; never overwritten), and what install
added is recorded in claude-install.json in the claudemesh config dir.
Whatever already does the job (your own claudemesh server entry, a hook
running the command, the rule) is left alone and not recorded. Running it
again changes nothing; ` + "`claudemesh uninstall`" + ` removes exactly what it recorded.`,
		Example: "  claudemesh install\n  claudemesh install --write\n  claudemesh install --write --no-hooks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runInstall(opts)
		},
	}
	c.Flags().BoolVar(&opts.Write, "write", false, "apply the changes (default: only show them)")
	c.Flags().BoolVar(&opts.NoHooks, "no-hooks", false, "leave the hooks out (status then comes from the transcript alone)")
	return c
}

func runInstall(opts *installOptions) error {
	p, err := opts.app.claudePaths()
	if err != nil {
		return err
	}
	cs, err := claudecode.Install(p, opts.NoHooks, opts.Write)
	if err != nil {
		return err
	}
	reportChanges(opts.io.Out, cs, opts.Write, "install", "claudemesh is already installed for Claude Code",
		"restart Claude Code (or run `claudemesh launch`) to connect a session")
	if _, err := exec.LookPath("claudemesh"); err != nil {
		fmt.Fprintln(opts.io.ErrOut, "note: `claudemesh` is not on your PATH; Claude Code runs it by that name")
	}
	return nil
}

type uninstallOptions struct {
	app   *app
	io    ioStreams
	Write bool
}

func (a *app) uninstallCommand() *cobra.Command {
	opts := &uninstallOptions{app: a}
	var dryRun bool
	c := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove what `claudemesh install` added to Claude Code's settings, and nothing else",
		Long: `Show what taking claudemesh out of Claude Code involves, and with --write do
it. Only what install recorded goes: its entries, the objects, files and
folders it created once they are empty again, the skill file if unchanged.
Entries you wrote yourself stay, even ones identical to install's. A file
untouched since install gets back its exact bytes from the backup (which
then goes); an edited one loses only install's entries, and its backup is
kept and named.`,
		Example: "  claudemesh uninstall\n  claudemesh uninstall --write",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runUninstall(opts)
		},
	}
	c.Flags().BoolVar(&opts.Write, "write", false, "apply the changes (default: only show them)")
	// --dry-run was the preview flag when uninstall wrote by default; the
	// preview is the default now, so it is accepted and changes nothing.
	c.Flags().BoolVar(&dryRun, "dry-run", false, "only show what would be removed (the default)")
	_ = c.Flags().MarkHidden("dry-run")
	c.MarkFlagsMutuallyExclusive("write", "dry-run")
	return c
}

func runUninstall(opts *uninstallOptions) error {
	p, err := opts.app.claudePaths()
	if err != nil {
		return err
	}
	cs, err := claudecode.Uninstall(p, opts.Write)
	if err != nil {
		return err
	}
	reportChanges(opts.io.Out, cs, opts.Write, "uninstall", "nothing that install recorded is left in Claude Code's files", "")
	return nil
}

type launchOptions struct {
	app  *app
	io   ioStreams
	Mesh string   // "" = the default mesh
	Args []string // passed on to claude
}

func (a *app) launchCommand() *cobra.Command {
	opts := &launchOptions{app: a}
	return &cobra.Command{
		Use:   "launch [mesh] [-- claude args...]",
		Short: "Start Claude Code connected to the mesh, with incoming messages pushed into the session",
		Long: `Start ` + "`claude`" + ` with a fresh session id and the claudemesh channel
enabled, so messages from peers appear in the conversation as they arrive.
The MCP server runs as that session (CLAUDEMESH_SESSION_ID), in the given
mesh (default: your default mesh). Without ` + "`claudemesh install`" + ` the server
is passed with --mcp-config. Arguments after -- go to claude.`,
		Example: "  claudemesh launch\n  claudemesh launch work -- --model opus",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io, opts.Mesh = streamsOf(cmd), a.mesh
			if dash := cmd.ArgsLenAtDash(); dash >= 0 {
				if dash > 1 {
					return usagef("launch takes one mesh before --")
				}
				if dash == 1 {
					opts.Mesh = args[0]
				}
				opts.Args = args[dash:]
			} else if len(args) > 1 {
				return usagef("launch takes one mesh; pass claude's own arguments after --")
			} else if len(args) == 1 {
				opts.Mesh = args[0]
			}
			return runLaunch(cmd.Context(), opts)
		},
	}
}

func runLaunch(ctx context.Context, opts *launchOptions) error {
	_, m, err := opts.app.selected(opts.Mesh)
	if err != nil {
		return err
	}
	claude, err := exec.LookPath("claude")
	if err != nil {
		return usagef("Claude Code (`claude`) is not on your PATH: install it first")
	}
	sid := uuid.NewString()
	argv := []string{"--session-id", sid, "--dangerously-load-development-channels", "server:" + claudecode.ServerName}
	if !opts.app.serverInstalled() {
		b, _ := json.Marshal(map[string]any{"mcpServers": map[string]any{claudecode.ServerName: map[string]any{"command": "claudemesh", "args": []string{"mcp"}}}})
		argv = append(argv, "--mcp-config", string(b))
	}
	argv = append(argv, opts.Args...)
	run := exec.CommandContext(ctx, claude, argv...)
	run.Stdin, run.Stdout, run.Stderr = opts.io.In, opts.io.Out, opts.io.ErrOut
	run.Env = append(os.Environ(), "CLAUDEMESH_SESSION_ID="+sid, "CLAUDEMESH_CHANNEL=1", "CLAUDEMESH_MESH="+m.ID)
	fmt.Fprintf(opts.io.ErrOut, "starting Claude Code in mesh %s as @%s (session %s)\n", m.Slug, m.DisplayName, sid)
	err = run.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.ExitCode()}
	}
	return err
}

// serverInstalled reports whether ~/.claude.json names the claudemesh server.
func (a *app) serverInstalled() bool {
	p, err := a.claudePaths()
	if err != nil {
		return false
	}
	b, err := os.ReadFile(p.ClaudeJSON)
	if err != nil {
		return false
	}
	var v struct {
		MCPServers map[string]json.RawMessage `json:"mcpServers"`
	}
	return json.Unmarshal(b, &v) == nil && v.MCPServers[claudecode.ServerName] != nil
}
