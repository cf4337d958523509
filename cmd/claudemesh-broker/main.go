// Command claudemesh-broker runs the claudemesh broker and its maintenance
// tasks:
//
//	claudemesh-broker [serve]                     serve HTTP, SSE and WebSocket on BROKER_ADDR (or BROKER_PORT)
//	claudemesh-broker migrate                     apply database migrations and exit
//	claudemesh-broker backfill-owner-members [--dry-run]
//	                                              give owners without a member row one
//	claudemesh-broker audit verify                check every mesh's audit hash chain
//	claudemesh-broker backup FILE                 copy the embedded SQLite while it serves
//	claudemesh-broker restore FILE                put a backup in place of the embedded SQLite (broker stopped)
//	claudemesh-broker healthcheck                 exit 0 when this host's broker answers /ready (container HEALTHCHECK)
//	claudemesh-broker version                     print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// sqliteLockWait is how long serve waits for a stopping broker to let go of
// its SQLite file before refusing (0: the store's default; tests shorten it).
var sqliteLockWait time.Duration

const usage = "usage: claudemesh-broker [serve | migrate | backfill-owner-members [--dry-run] | audit verify | backup FILE | restore FILE | healthcheck | version]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "claudemesh-broker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "claudemesh-broker", buildVersion())
		return nil
	case "help", "--help", "-h":
		fmt.Fprintln(stdout, usage)
		return nil
	case "serve", "migrate", "backfill-owner-members":
	case "backup", "restore":
		if len(args) != 1 || args[0] == "" || args[0][0] == '-' {
			return fmt.Errorf("usage: claudemesh-broker %s FILE", cmd)
		}
	case "healthcheck":
	case "audit":
		if len(args) != 1 || args[0] != "verify" {
			return fmt.Errorf("usage: claudemesh-broker audit verify")
		}
	default:
		return fmt.Errorf("unknown command %q (%s)", cmd, usage)
	}
	cfg, err := api.LoadConfig(getenv)
	if err != nil {
		var ce *api.ConfigError
		if errors.As(err, &ce) {
			return fmt.Errorf("bad configuration: %w", err)
		}
		return err
	}
	switch cmd {
	case "healthcheck":
		return healthcheck(ctx, cfg, stdout)
	case "restore":
		return restore(ctx, cfg, args[0], stdout)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	store, err := models.Open(ctx, models.Options{DatabaseURL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath, MaxMessageBytes: cfg.MaxMessageBytes,
		// A serving broker owns its SQLite file: a second one is refused.
		ExclusiveSQLite: cmd == "serve", LockWait: sqliteLockWait})
	if err != nil {
		return err
	}
	defer store.Close()
	if cmd == "backup" {
		// A backup reads the schema as it is; it never migrates.
		return backup(ctx, store, args[0], stdout)
	}
	v, err := store.Migrate(ctx)
	if err != nil {
		return err
	}
	switch cmd {
	case "migrate":
		fmt.Fprintf(stdout, "%s schema at version %d\n", store.Dialect(), v)
		return nil
	case "backfill-owner-members":
		return backfill(ctx, store, args, stdout)
	case "audit":
		return auditVerify(ctx, store, stdout)
	}
	log.Info("database ready", slog.String("dialect", string(store.Dialect())), slog.Int64("schema_version", v))
	srv, err := api.New(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	defer srv.Close() // before the store closes: peer connections record their disconnects
	if cfg.PprofAddr != "" {
		stop, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	return srv.Run(ctx)
}

// servePprof serves Go's profiler on its own listener (PPROF_ADDR), never
// on the public port: profiles name code paths and allocation sites.
func servePprof(addr string, log *slog.Logger) (func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on PPROF_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Info("pprof listening", slog.String("addr", ln.Addr().String()))
	return func() { _ = hs.Close() }, nil
}

func backfill(ctx context.Context, store *models.Store, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backfill-owner-members", flag.ContinueOnError)
	dry := fs.Bool("dry-run", false, "list the meshes that need an owner member without changing anything")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := store.BackfillOwnerMembers(ctx, *dry)
	for _, r := range res {
		if r.Created {
			fmt.Fprintf(stdout, "created owner member %s (@%s) in mesh %s (%s)\n", r.MemberID, r.DisplayName, r.MeshID, r.Slug)
		} else {
			fmt.Fprintf(stdout, "would create owner member in mesh %s (%s)\n", r.MeshID, r.Slug)
		}
	}
	if err != nil {
		return err
	}
	verb := "created"
	if *dry {
		verb = "would create"
	}
	fmt.Fprintf(stdout, "%s %d owner member(s)\n", verb, len(res))
	return nil
}

// auditVerify walks every mesh's audit chain. A broken chain (an edited or
// deleted row) prints the first broken row of each mesh and fails the
// command, so it can gate a cron job or a deploy.
func auditVerify(ctx context.Context, store *models.Store, stdout io.Writer) error {
	breaks, checked, err := store.VerifyAudit(ctx)
	if err != nil {
		return err
	}
	for _, b := range breaks {
		fmt.Fprintf(stdout, "mesh %s: audit chain broken at seq %d: %s\n", b.MeshID, b.Seq, b.Reason)
	}
	if len(breaks) > 0 {
		return fmt.Errorf("audit chain broken in %d mesh(es) (%d events checked)", len(breaks), checked)
	}
	fmt.Fprintf(stdout, "audit chain intact: %d events checked\n", checked)
	return nil
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}
