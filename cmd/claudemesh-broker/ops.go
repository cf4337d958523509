package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/claudemesh/claudemesh-go/api"
	"github.com/claudemesh/claudemesh-go/models"
)

// healthcheck GETs /ready on this host's broker, at the address serve would
// listen on, and fails unless it answers 200. A FROM-scratch image has no
// curl, so the image's HEALTHCHECK runs the broker binary itself.
func healthcheck(ctx context.Context, cfg api.Config, stdout io.Writer) error {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", cfg.AddrVar, cfg.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening everywhere includes loopback
	}
	url := "http://" + net.JoinHostPort(host, port) + "/ready"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %d", url, resp.StatusCode)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// backup writes a consistent copy of the embedded SQLite database to dest
// while the broker serves. PostgreSQL has its own tools (pg_dump).
func backup(ctx context.Context, store *models.Store, dest string, stdout io.Writer) error {
	n, err := store.BackupSQLite(ctx, dest)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %d bytes to %s\n", n, dest)
	return nil
}

// restore puts a backup in place of the embedded SQLite database; the
// broker must be stopped (it is refused while one serves the file).
func restore(ctx context.Context, cfg api.Config, src string, stdout io.Writer) error {
	if cfg.DatabaseURL != "" {
		return fmt.Errorf("restore is for the embedded SQLite; on PostgreSQL use pg_restore (docs/DEPLOY.md)")
	}
	if err := models.RestoreSQLite(ctx, src, cfg.SQLitePath); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s from %s\n", cfg.SQLitePath, src)
	return nil
}
