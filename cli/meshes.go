package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/claudemesh/claudemesh-go/client"
	"github.com/claudemesh/claudemesh-go/peer"
)

// defaultServer is where join goes without --server or a URL invite.
const defaultServer = "http://localhost:7900"

// meshView is a joined mesh as --json prints it (never the API key).
type meshView struct {
	ID          string `json:"id"`
	Slug        string `json:"slug"`
	Name        string `json:"name"`
	Server      string `json:"server"`
	MemberID    string `json:"memberId"`
	DisplayName string `json:"displayName"`
	Pubkey      string `json:"pubkey"`
	Default     bool   `json:"default"`
	JoinedAt    string `json:"joinedAt"`
}

func viewOf(m *peer.Mesh, def bool) meshView {
	return meshView{ID: m.ID, Slug: m.Slug, Name: m.Name, Server: m.Server, MemberID: m.MemberID,
		DisplayName: m.DisplayName, Pubkey: m.Pubkey, Default: def, JoinedAt: m.JoinedAt.UTC().Format("2006-01-02T15:04:05Z")}
}

// parseInvite accepts a bare invite token, or a URL carrying one (as
// ?token= or the last path element); a URL also names the server.
func parseInvite(invite string) (server, token string, err error) {
	invite = strings.TrimSpace(invite)
	if !strings.Contains(invite, "://") {
		if invite == "" {
			return "", "", usagef("the invite is empty")
		}
		return "", invite, nil
	}
	u, err := url.Parse(invite)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", "", usagef("the invite %q is neither a token nor an http(s) URL", invite)
	}
	token = u.Query().Get("token")
	if token == "" {
		parts := strings.Split(strings.Trim(u.Path, "/"), "/")
		token = parts[len(parts)-1]
	}
	if token == "" {
		return "", "", usagef("no invite token in %q", invite)
	}
	return u.Scheme + "://" + u.Host, token, nil
}

type joinOptions struct {
	app    *app
	io     ioStreams
	Server string
	Name   string
	JSON   bool
	Invite string
}

func (a *app) joinCommand() *cobra.Command {
	opts := &joinOptions{app: a}
	c := &cobra.Command{
		Use:   "join <invite>",
		Short: "Join a mesh with an invite (makes this machine's identity on first use)",
		Long: `Join a mesh with an invite token (or an invite URL). The first join makes
an ed25519 identity, stored with mode 0600 in the config dir and never
printed; the member API key the broker returns is stored there too.
Several meshes can be joined side by side; the first is the default.`,
		Example: `  claudemesh join cmi_Xy12... --server http://broker.example:7900 --name ada
  claudemesh join "http://broker.example:7900/join?token=cmi_Xy12..."`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io = streamsOf(cmd)
			opts.Invite = args[0]
			return runJoin(cmd.Context(), opts)
		},
	}
	c.Flags().StringVar(&opts.Server, "server", "", "the broker URL (default: from the invite URL, else $CLAUDEMESH_SERVER, else "+defaultServer+")")
	c.Flags().StringVar(&opts.Name, "name", "", "your display name in the mesh (default: $USER)")
	jsonFlag(c, &opts.JSON)
	return c
}

func runJoin(ctx context.Context, opts *joinOptions) error {
	srvFromInvite, token, err := parseInvite(opts.Invite)
	if err != nil {
		return err
	}
	srv := opts.Server
	if srv == "" {
		srv = srvFromInvite
	}
	if srv == "" {
		srv = opts.app.env.Getenv("CLAUDEMESH_SERVER")
	}
	if srv == "" {
		srv = defaultServer
	}
	srv = strings.TrimRight(srv, "/")
	if u, err := url.Parse(srv); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("--server %q: want an http:// or https:// URL", srv)
	}
	if opts.Name == "" {
		opts.Name = opts.app.env.Getenv("USER")
	}
	opts.Name = strings.ToLower(opts.Name)
	if opts.Name == "" {
		return usagef("pass --name: the display name other members mention you by")
	}
	id, created, err := opts.app.home.LoadOrCreateIdentity()
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	api, err := peer.NewREST(srv, "", opts.app.env.HTTP)
	if err != nil {
		return err
	}
	r, err := api.JoinMeshWithResponse(ctx, client.JoinRequest{Token: token, Pubkey: id.PublicKeyHex(), DisplayName: opts.Name})
	if err := peer.Check(srv, err, r, http.StatusCreated); err != nil {
		return joinHint(err, opts.Name)
	}
	j := r.JSON201
	if j == nil {
		return fmt.Errorf("join: the broker's answer has no member")
	}
	m := peer.Mesh{ID: j.Mesh.Id.String(), Slug: j.Mesh.Slug, Name: j.Mesh.Name, Server: srv,
		MemberID: j.Member.Id.String(), DisplayName: j.Member.DisplayName, Pubkey: id.PublicKeyHex(),
		APIKey: j.ApiKey.Key, JoinedAt: j.Member.JoinedAt}
	cfg, err := opts.app.home.Load()
	if err != nil {
		return err
	}
	cfg.Upsert(m)
	if err := opts.app.home.Save(cfg); err != nil {
		return fmt.Errorf("save the config: %w", err)
	}
	if opts.JSON {
		return writeJSON(opts.io.Out, viewOf(&m, cfg.Default == m.ID))
	}
	out := opts.io.Out
	if created {
		fmt.Fprintf(out, "made a new identity in %s\n", opts.app.home.Dir)
	}
	fmt.Fprintf(out, "joined %s (%s) as @%s\n", m.Name, m.Slug, m.DisplayName)
	if cfg.Default != m.ID {
		fmt.Fprintf(out, "not your default mesh: pass --mesh %s, or run `claudemesh use %s`\n", m.Slug, m.Slug)
	}
	fmt.Fprintf(out, "next: `claudemesh topic list`, `claudemesh topic tail general`\n")
	return nil
}

func joinHint(err error, name string) error {
	var ae *peer.APIError
	if !asAPI(err, &ae) {
		return err
	}
	switch ae.Status {
	case http.StatusConflict:
		return hint(err, "the name @%s may be taken in this mesh: pass another --name", name)
	case http.StatusNotFound, http.StatusGone, http.StatusUnauthorized:
		return hint(err, "the invite is unknown, used up or expired: ask for a new one")
	case http.StatusUnprocessableEntity:
		return hint(err, "names are lower-case letters, digits, - and _ (up to 64): pass another --name")
	}
	return err
}

type whoamiOptions struct {
	app  *app
	io   ioStreams
	JSON bool
}

func (a *app) whoamiCommand() *cobra.Command {
	opts := &whoamiOptions{app: a}
	c := &cobra.Command{
		Use:     "whoami",
		Short:   "Show who you are in the selected mesh, and check the broker knows you",
		Example: "  claudemesh whoami\n  claudemesh whoami --mesh platform --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runWhoami(cmd.Context(), opts)
		},
	}
	jsonFlag(c, &opts.JSON)
	return c
}

func runWhoami(ctx context.Context, opts *whoamiOptions) error {
	cfg, m, err := opts.app.selected(opts.app.mesh)
	if err != nil {
		return err
	}
	v := viewOf(m, cfg.Default == m.ID)
	s, err := opts.app.session()
	if err != nil {
		return err
	}
	// One authenticated call proves the key still works.
	r, err := s.api.ListTopicsWithResponse(ctx, &client.ListTopicsParams{Limit: ptr(client.Limit(1))})
	if err := s.check(err, r, http.StatusOK); err != nil {
		return err
	}
	if opts.JSON {
		return writeJSON(opts.io.Out, v)
	}
	t := newTable(opts.io.Out, "NAME", "MESH", "SERVER", "MEMBER", "PUBKEY")
	t.row("@"+v.DisplayName, v.Slug, v.Server, v.MemberID, v.Pubkey)
	return t.flush()
}

type listOptions struct {
	app  *app
	io   ioStreams
	JSON bool
}

func (a *app) listCommand() *cobra.Command {
	opts := &listOptions{app: a}
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the meshes you have joined (* marks the default)",
		Example: "  claudemesh list\n  claudemesh ls --json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.io = streamsOf(cmd)
			return runList(cmd.Context(), opts)
		},
	}
	jsonFlag(c, &opts.JSON)
	return c
}

func runList(ctx context.Context, opts *listOptions) error {
	cfg, err := opts.app.home.Load()
	if err != nil {
		return err
	}
	out := opts.io.Out
	if opts.JSON {
		for i := range cfg.Meshes {
			if err := writeJSON(out, viewOf(&cfg.Meshes[i], cfg.Meshes[i].ID == cfg.Default)); err != nil {
				return err
			}
		}
		return nil
	}
	if len(cfg.Meshes) == 0 {
		fmt.Fprintln(out, "no meshes yet: run `claudemesh join <invite> --server URL`")
		return nil
	}
	now := opts.app.env.Now()
	t := newTable(out, "", "MESH", "NAME", "AS", "SERVER", "JOINED")
	for i := range cfg.Meshes {
		m := &cfg.Meshes[i]
		mark := ""
		if m.ID == cfg.Default || (cfg.Default == "" && i == 0) {
			mark = "*"
		}
		t.row(mark, m.Slug, m.Name, "@"+m.DisplayName, m.Server, ago(now, m.JoinedAt))
	}
	return t.flush()
}

type useOptions struct {
	app  *app
	io   ioStreams
	Mesh string
}

func (a *app) useCommand() *cobra.Command {
	opts := &useOptions{app: a}
	return &cobra.Command{
		Use:     "use <mesh>",
		Short:   "Make a joined mesh (slug or id) the default",
		Example: "  claudemesh use platform",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.io = streamsOf(cmd)
			opts.Mesh = args[0]
			return runUse(cmd.Context(), opts)
		},
	}
}

func runUse(ctx context.Context, opts *useOptions) error {
	cfg, m, err := opts.app.selected(opts.Mesh)
	if err != nil {
		return err
	}
	cfg.Default = m.ID
	if err := opts.app.home.Save(cfg); err != nil {
		return err
	}
	fmt.Fprintf(opts.io.Out, "default mesh: %s (%s)\n", m.Slug, m.Name)
	return nil
}

func ptr[T any](v T) *T { return &v }
