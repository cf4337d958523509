// Package npmtest gives tests pinned npm packages (a browser driver, a
// linter, a reference implementation) without putting node_modules in the
// source tree: each package version is installed once into the user cache
// directory and reused by later runs.
package npmtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Node returns the node binary, failing the test when it is missing.
func Node(t testing.TB) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not on PATH")
	}
	return node
}

// Install returns a directory whose node_modules holds pkg at version,
// installing it on first use. The install goes to a temporary sibling that
// is renamed into place, so concurrent test processes never see half of it.
func Install(t testing.TB, pkg, version string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "claudemesh-test", filepath.Base(pkg)+"-"+version)
	if Installed(dir, pkg, version) {
		return dir
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is not on PATH and %s@%s is not installed in %s", pkg, version, dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private":true}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--save-exact", pkg+"@"+version)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install %s@%s: %v\n%s", pkg, version, err, out)
	}
	if err := os.Rename(tmp, dir); err != nil && !Installed(dir, pkg, version) {
		t.Fatal(err)
	}
	return dir
}

// Installed reports whether dir's node_modules holds pkg at version.
func Installed(dir, pkg, version string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "package.json"))
	if err != nil {
		return false
	}
	var p struct {
		Version string `json:"version"`
	}
	return json.Unmarshal(raw, &p) == nil && p.Version == version
}
