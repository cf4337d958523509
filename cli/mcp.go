package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/claudecode"
	"github.com/claudemesh/claudemesh-go/mcpserver"
	"github.com/claudemesh/claudemesh-go/peer"
)

// version is reported to MCP clients.
const version = "0.1.0"

type mcpOptions struct {
	app     *app
	io      ioStreams
	Channel bool
	NoWatch bool
}

func (a *app) mcpCommand() *cobra.Command {
	opts := &mcpOptions{app: a}
	c := &cobra.Command{
		Use:   "mcp",
		Short: "Run the MCP server that connects a Claude Code session to the mesh (stdio)",
		Long: `Serve the Model Context Protocol on stdin/stdout as the server "claudemesh".
Claude Code starts it (see ` + "`claudemesh install`" + `); it holds the session's
connection to the broker, gives the model tools (send_message, list_peers,
check_messages, set_summary, set_status, message_status, topic_post,
topic_history), pushes incoming messages as channel notifications, and
reports the status inferred from the session's transcript.

The session id is $CLAUDEMESH_SESSION_ID when set (claudemesh launch sets
it to Claude Code's session id), else derived from the parent process and
directory, so a restarted server resumes the same session and spool.
Diagnostics go to stderr.`,
		Example: `  # ~/.claude.json (claudemesh install --write adds it)
  "mcpServers": {"claudemesh": {"command": "claudemesh", "args": ["mcp"]}}
  claude mcp add claudemesh -- claudemesh mcp --mesh work`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runMCP(cmd.Context(), opts)
		},
	}
	c.Flags().BoolVar(&opts.Channel, "channel", false, "push incoming messages as notifications/claude/channel even if the client did not declare it")
	c.Flags().BoolVar(&opts.NoWatch, "no-watch", false, "do not infer the status from the session's transcript")
	return c
}

func runMCP(ctx context.Context, opts *mcpOptions) error {
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	ppid := os.Getppid()
	sid := opts.app.env.Getenv("CLAUDEMESH_SESSION_ID")
	if sid == "" {
		sid = derivedSessionID(ppid, cwd)
	}
	if opts.app.env.Getenv("CLAUDEMESH_CHANNEL") == "1" {
		opts.Channel = true
	}
	errOut := opts.io.ErrOut
	mesh := opts.app.mesh
	if mesh == "" {
		mesh = opts.app.env.Getenv("CLAUDEMESH_MESH") // set by claudemesh launch
	}
	opt := mcpserver.Options{Home: opts.app.home, Mesh: mesh, HTTP: opts.app.env.HTTP, SessionID: sid, Pid: ppid, Cwd: cwd,
		Channel: opts.Channel, Version: version,
		Logf: func(format string, args ...any) { fmt.Fprintf(errOut, "claudemesh mcp: "+format+"\n", args...) }}
	if opt.ResealEvery, err = peer.ResealInterval(opts.app.env.Getenv); err != nil {
		return usagef("%v", err)
	}
	if !opts.NoWatch {
		opt.Watch = opts.app.transcriptWatch(cwd, sid)
	}
	t := &mcp.IOTransport{Reader: readCloser{opts.io.In}, Writer: writeCloser{opts.io.Out}}
	err = mcpserver.Run(ctx, opt, t)
	if ctx.Err() != nil {
		return nil //nolint:nilerr // stopped by a signal: a clean exit, whatever the transport said
	}
	return err
}

// derivedSessionID names the session after the Claude Code process (the
// parent) and directory: stable when Claude Code restarts this server.
func derivedSessionID(ppid int, cwd string) string {
	h := sha256.Sum256([]byte(strconv.Itoa(ppid) + "\x00" + cwd))
	return "cc-" + hex.EncodeToString(h[:8])
}

// readCloser and writeCloser adapt the command's stdin and stdout for the
// MCP transport; closing the session must not close the process's stdio.
type readCloser struct{ io.Reader }

func (readCloser) Close() error { return nil }

type writeCloser struct{ io.Writer }

func (writeCloser) Close() error { return nil }

// transcriptWatch infers the session's status from its transcript under
// ~/.claude/projects (claudecode.Watch).
func (a *app) transcriptWatch(cwd, sessionID string) func(ctx context.Context, report func(string)) error {
	return func(ctx context.Context, report func(string)) error {
		home, err := a.userHome()
		if err != nil {
			return err
		}
		return claudecode.Watch(ctx, claudecode.WatchOptions{Dirs: claudecode.ProjectDirs(home, cwd), SessionID: sessionID, Now: a.env.Now}, report)
	}
}

// userHome is $HOME, else the OS's idea of it.
func (a *app) userHome() (string, error) {
	if h := a.env.Getenv("HOME"); h != "" {
		return h, nil
	}
	return os.UserHomeDir()
}
