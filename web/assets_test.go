package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/web"
)

const vendorDir = "static/assets/vendor"

// TestVendoredFilesMatchTheirSums: the committed libsodium files are the ones
// vendor.sh recorded in SHA256SUMS, and nothing else sits beside them.
func TestVendoredFilesMatchTheirSums(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(vendorDir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := []string{"SHA256SUMS"}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("bad SHA256SUMS line %q", line)
		}
		b, err := os.ReadFile(filepath.Join(vendorDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("%s differs from SHA256SUMS: re-run web/vendor.sh", name)
		}
		listed = append(listed, name)
	}
	entries, err := os.ReadDir(vendorDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(listed, e.Name()) {
			t.Errorf("%s/%s is not produced by vendor.sh", vendorDir, e.Name())
		}
	}
}

// TestVendoredFilesAreReproducible re-runs vendor.sh (npm pack of the pinned,
// checksummed tarballs) into a temporary directory and compares it with the
// committed files byte for byte. It needs npm and the registry (or npm's
// cache); without them it skips locally and fails under CI=true.
func TestVendoredFilesAreReproducible(t *testing.T) {
	if _, err := exec.LookPath("npm"); err != nil {
		if inCI() {
			t.Fatal("CI=true and npm is missing: cannot check web/static/assets/vendor against vendor.sh")
		}
		t.Skip("npm is not on PATH")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "vendor.sh", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		if inCI() {
			t.Fatalf("vendor.sh: %v\n%s", err, b)
		}
		t.Skipf("vendor.sh could not run here (offline?): %v\n%s", err, b)
	}
	fresh, _ := os.ReadDir(out)
	committed, _ := os.ReadDir(vendorDir)
	if len(fresh) != len(committed) {
		t.Errorf("vendor.sh makes %d files, %d are committed", len(fresh), len(committed))
	}
	for _, e := range fresh {
		a, _ := os.ReadFile(filepath.Join(out, e.Name()))
		b, err := os.ReadFile(filepath.Join(vendorDir, e.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("committed %s is stale: run web/vendor.sh and commit the result", e.Name())
		}
	}
}

// TestModuleImportsResolve: every relative import in our modules names an
// embedded file (there is no bundler to catch a typo).
func TestModuleImportsResolve(t *testing.T) {
	d := web.New()
	imp := regexp.MustCompile(`(?m)^import [^;]*?from "(\./[^"]+)"`)
	files, _ := filepath.Glob("static/assets/*.js")
	if len(files) < 5 {
		t.Fatalf("found %d modules", len(files))
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range imp.FindAllStringSubmatch(string(src), -1) {
			if p := "/assets/" + strings.TrimPrefix(m[1], "./"); !d.Has(p) {
				t.Errorf("%s imports %s, which is not embedded", f, m[1])
			}
		}
		if bytes.Contains(src, []byte("innerHTML")) || bytes.Contains(src, []byte("eval(")) {
			t.Errorf("%s uses innerHTML or eval", f)
		}
	}
}

func TestPageHeaders(t *testing.T) {
	d := web.New()
	for _, path := range []string{"/", "/assets/app.js", "/assets/app.css", "/assets/vendor/libsodium.mjs"} {
		rec := httptest.NewRecorder()
		d.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		h := rec.Header()
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, rec.Code)
		}
		csp := h.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "'unsafe-eval'") {
			t.Errorf("GET %s: CSP allows inline script or eval: %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET %s: headers %v", path, h)
		}
		if strings.HasSuffix(path, "js") && !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") {
			t.Errorf("GET %s: Content-Type %q", path, h.Get("Content-Type"))
		}
		// Revalidation answers 304.
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		rec = httptest.NewRecorder()
		d.ServeHTTP(rec, req)
		if rec.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d, want 304", path, rec.Code)
		}
	}
	// The page has no inline script or style for the CSP to refuse.
	rec := httptest.NewRecorder()
	d.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]|<style|\sstyle=|\son[a-z]+=`).Match(rec.Body.Bytes()) {
		t.Errorf("index.html has inline script, style or handlers")
	}
}
