// Package web is the dashboard: static ES modules embedded in the broker
// binary and served at / and /assets/ with strict security headers. There
// is no build step for our own code; the only third-party files are the
// vendored libsodium-wrappers (vendor.sh, checked by assets_test.go).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// csp allows only same-origin scripts, styles and connections. libsodium
// instantiates its embedded WebAssembly module, which needs
// 'wasm-unsafe-eval' (not 'unsafe-eval': JavaScript eval stays forbidden).
const csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type file struct {
	body  []byte
	etag  string
	ctype string
}

// Dashboard serves the embedded files. The zero value is not usable; call New.
type Dashboard struct {
	files map[string]file // "/index.html", "/assets/app.js", …
}

// New indexes the embedded files once, with a content hash as ETag.
func New() *Dashboard {
	d := &Dashboard{files: map[string]file{}}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("web: " + err.Error())
	}
	_ = fs.WalkDir(sub, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(p))
		switch path.Ext(p) {
		case ".mjs", ".js":
			ct = "text/javascript; charset=utf-8"
		case "":
			ct = "text/plain; charset=utf-8"
		}
		d.files["/"+p] = file{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, ctype: ct}
		return nil
	})
	return d
}

// Has reports whether urlPath names an embedded file ("/" is index.html).
func (d *Dashboard) Has(urlPath string) bool {
	_, ok := d.lookup(urlPath)
	return ok
}

func (d *Dashboard) lookup(urlPath string) (file, bool) {
	if urlPath == "/" || urlPath == "" {
		urlPath = "/index.html"
	}
	if strings.Contains(urlPath, "..") {
		return file{}, false
	}
	f, ok := d.files[urlPath]
	return f, ok
}

// ServeHTTP writes the file at r.URL.Path with the security headers, or
// answers false-y 404 through NotFound when there is none.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := d.lookup(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	SecurityHeaders(w.Header())
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("ETag", f.etag)
	// Not content-addressed names, so revalidate every time (cheap: 304).
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}

// SecurityHeaders sets the page's headers: CSP without inline script, no
// framing, no sniffing, no referrer (invite links carry a token in the
// fragment, which browsers never send, and no page URL leaks anywhere).
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
}
