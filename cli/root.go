// Package cli is the `claudemesh` peer command line: its commands, their
// output and their exit codes. Local state and connections come from peer/;
// every REST call goes through the generated client/.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/peer"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitUsage   = 1 // bad arguments, or nothing to act on locally
	ExitRefused = 2 // the broker answered with an error
	ExitNetwork = 3 // the broker could not be reached
)

// Env is the world a command runs in; tests pass their own.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// HTTP is the client for REST, SSE and /ws (http.DefaultClient when nil).
	HTTP *http.Client
	// Now is the clock relative times are computed from (time.Now when nil).
	Now func() time.Time
}

// app is what every command shares: the environment and the global flags.
type app struct {
	env  Env
	mesh string // --mesh
	home peer.Home
}

// ioStreams is where a command reads and writes: cobra's streams, or a
// test's buffers when a run function is called directly.
type ioStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

func streamsOf(cmd *cobra.Command) ioStreams {
	return ioStreams{In: cmd.InOrStdin(), Out: cmd.OutOrStdout(), ErrOut: cmd.ErrOrStderr()}
}

// usageError is a mistake in the command line or local state (exit 1).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError passes a child process's exit status through (`claudemesh launch`).
type exitError struct{ code int }

func (e *exitError) Error() string { return "claude exited with status " + fmt.Sprint(e.code) }

// hinted adds a next step to an error without changing its exit code.
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

// asAPI reports whether err is a broker refusal.
func asAPI(err error, ae **peer.APIError) bool { return errors.As(err, ae) }

func hint(err error, format string, args ...any) error {
	return &hinted{err: err, hint: fmt.Sprintf(format, args...)}
}

// Run executes the command line and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.HTTP == nil {
		env.HTTP = http.DefaultClient
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	a := &app{env: env}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := ExitCode(err)
	fmt.Fprintf(env.Stderr, "claudemesh: %v\n", err)
	var h *hinted
	if errors.As(err, &h) && h.hint != "" {
		fmt.Fprintf(env.Stderr, "  %s\n", h.hint)
	} else if hn := defaultHint(err); hn != "" {
		fmt.Fprintf(env.Stderr, "  %s\n", hn)
	}
	return code
}

// ExitCode maps an error to the documented exit codes.
func ExitCode(err error) int {
	var ae *peer.APIError
	var wr *peer.WSRefusedError
	var ne *peer.NetworkError
	var xe *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &xe):
		return xe.code
	case errors.As(err, &ae), errors.As(err, &wr):
		return ExitRefused
	case errors.As(err, &ne):
		return ExitNetwork
	default:
		return ExitUsage
	}
}

// defaultHint says what to do next for errors that need no topic context.
func defaultHint(err error) string {
	var ae *peer.APIError
	var ne *peer.NetworkError
	switch {
	case errors.As(err, &ne):
		return "is the broker running there? `claudemesh list` shows each mesh's server"
	case errors.Is(err, peer.ErrNoMesh):
		return "join one with `claudemesh join <invite> --server URL`"
	case errors.As(err, &ae):
		switch {
		case ae.Status == http.StatusUnauthorized:
			return "the API key was refused (revoked or expired): join again with a new invite"
		case ae.Code() == "capability_required":
			return "this member's key lacks that capability: ask a mesh admin"
		case ae.Status == http.StatusTooManyRequests:
			return "rate limited: wait a moment and retry"
		}
	}
	return ""
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "claudemesh",
		Short: "Talk to your mesh: end-to-end encrypted topics and direct messages between Claude Code peers",
		Long: `claudemesh is the peer command line for a claudemesh broker.

Join a mesh with an invite, then post to and follow encrypted topics and
send direct messages. Messages are encrypted on this machine; the broker
only sees ciphertext.

Config lives in $CLAUDEMESH_CONFIG_DIR, else $XDG_CONFIG_HOME/claudemesh,
else your OS config dir. Exit codes: 0 ok, 1 usage, 2 the broker refused,
3 the broker could not be reached.`,
		Example: `  claudemesh join cmi_abc123 --server http://localhost:7900 --name ada
  claudemesh topic post general "deploy is green"
  claudemesh topic tail general`,
		Version:           buildVersion(),
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := peer.ConfigDir(a.env.Getenv)
			if err != nil {
				return err
			}
			a.home = peer.Home{Dir: dir}
			return nil
		},
	}
	root.SetVersionTemplate("claudemesh {{.Version}}\n")
	root.PersistentFlags().StringVar(&a.mesh, "mesh", "", "the mesh to act in, by slug or id (default: the default mesh)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(a.joinCommand(), a.whoamiCommand(), a.listCommand(), a.useCommand(),
		a.peersCommand(), a.statusCommand(), a.summaryCommand(),
		a.topicCommand(), a.sendCommand(), a.inboxCommand(), a.mcpCommand(), a.hookCommand(),
		a.installCommand(), a.uninstallCommand(), a.launchCommand(), a.versionCommand())
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs makes argument-count errors usage errors, recursively, and
// makes a group of commands (topic, status, hook) refuse a word it does
// not know: cobra checks that only on the root and otherwise prints the
// group's help and exits 0, so a script took `topic psot` for a success.
func wrapArgs(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = unknownSubcommand
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	if v := c.Args; v != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			if err := v(cmd, args); err != nil {
				return usagef("%v\nusage: %s", err, cmd.UseLine())
			}
			return nil
		}
	}
	c.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%v\nusage: %s", err, cmd.UseLine())
	})
	for _, sub := range c.Commands() {
		wrapArgs(sub)
	}
}

// unknownSubcommand refuses any argument of a command group, naming the
// closest subcommands as cobra does for the root.
func unknownSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra sets this default on the root only
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return errors.New(msg)
}

// selected loads the config and the mesh named (by slug or id; "" = the
// default mesh).
func (a *app) selected(mesh string) (*peer.Config, *peer.Mesh, error) {
	cfg, err := a.home.Load()
	if err != nil {
		return nil, nil, err
	}
	m, err := cfg.Select(mesh)
	if err != nil {
		return nil, nil, err
	}
	return cfg, m, nil
}

// session is a selected mesh with its identity and REST client.
type session struct {
	p    *peer.Session
	mesh *peer.Mesh
	id   meshcrypto.Identity
	api  *client.ClientWithResponses
}

func (a *app) session() (*session, error) {
	p, err := a.home.Open(a.mesh, a.env.HTTP)
	var mismatch *peer.IdentityMismatchError
	if errors.As(err, &mismatch) {
		return nil, usagef("%v", err)
	}
	if err != nil {
		return nil, err
	}
	return &session{p: p, mesh: p.Mesh, id: p.ID, api: p.API}, nil
}

// check is peer.Check for the session's server.
func (s *session) check(err error, r peer.Response, want ...int) error {
	return peer.Check(s.mesh.Server, err, r, want...)
}
