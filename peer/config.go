// Package peer is a member's local side of claudemesh: the config directory
// (meshes joined, their API keys, the default), the ed25519 identity, and the
// REST and /ws connections built from them. The CLI uses it, and so can any
// other front end (an MCP server, hooks) that acts as the same peer.
package peer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// File names inside the config directory.
const (
	configFile   = "config.json"
	identityFile = "identity.key"
)

// ErrNoMesh is returned when no mesh has been joined (or none matches).
var ErrNoMesh = errors.New("no mesh joined")

// Home is a config directory: $CLAUDEMESH_CONFIG_DIR, else
// $XDG_CONFIG_HOME/claudemesh, else the OS user config dir's claudemesh.
type Home struct {
	Dir string
}

// Mesh is one joined mesh. APIKey is a secret: never print it.
type Mesh struct {
	ID          string    `json:"id"`
	Slug        string    `json:"slug"`
	Name        string    `json:"name"`
	Server      string    `json:"server"`
	MemberID    string    `json:"memberId"`
	DisplayName string    `json:"displayName"`
	Pubkey      string    `json:"pubkey"`
	APIKey      string    `json:"apiKey"`
	JoinedAt    time.Time `json:"joinedAt"`
}

// Config is config.json: the meshes joined and which one is the default.
type Config struct {
	Default string `json:"default,omitempty"`
	Meshes  []Mesh `json:"meshes"`
}

// ConfigDir resolves the config directory from the environment.
func ConfigDir(getenv func(string) string) (string, error) {
	if d := getenv("CLAUDEMESH_CONFIG_DIR"); d != "" {
		return d, nil
	}
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "claudemesh"), nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory (set CLAUDEMESH_CONFIG_DIR): %w", err)
	}
	return filepath.Join(d, "claudemesh"), nil
}

// FileError is a file in the config directory that cannot be used as it
// is: what is wrong with it and what to do. Nothing in it is secret.
type FileError struct {
	Path    string
	Problem string // e.g. "is not valid JSON: unexpected end of JSON input"
	Fix     string
}

func (e *FileError) Error() string {
	return filepath.Base(e.Path) + " at " + e.Path + " " + e.Problem + "; " + e.Fix
}

// Load reads config.json; a missing file is an empty config. A file that
// is not JSON, or whose meshes lack what every command needs, is reported
// as what it is, so it never surfaces later as an identity mismatch.
func (h Home) Load() (*Config, error) {
	path := filepath.Join(h.Dir, configFile)
	b, err := readSecret(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, err
	}
	bad := func(problem string) error {
		return &FileError{Path: path, Problem: problem, Fix: "fix or remove it (then join your meshes again)"}
	}
	var c *Config
	if err := json.Unmarshal(b, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, bad("is not a claudemesh config: " + err.Error())
		}
		return nil, bad("is not valid JSON: " + err.Error())
	}
	if c == nil {
		return nil, bad("is not a claudemesh config: it holds null")
	}
	if err := c.validate(); err != nil {
		return nil, bad("is damaged: " + err.Error())
	}
	return c, nil
}

// validate checks that every mesh has what the commands use: an id, an
// http(s) server, a 32-byte hex pubkey and an API key; and that the
// default names one of them.
func (c *Config) validate() error {
	found := c.Default == ""
	for i, m := range c.Meshes {
		name := fmt.Sprintf("mesh %d (%q)", i+1, m.Slug)
		switch {
		case m.ID == "":
			return fmt.Errorf("%s has no id", name)
		case !strings.HasPrefix(m.Server, "http://") && !strings.HasPrefix(m.Server, "https://"):
			return fmt.Errorf("%s has no http(s) server", name)
		case len(m.Pubkey) != 64 || strings.Trim(strings.ToLower(m.Pubkey), "0123456789abcdef") != "":
			return fmt.Errorf("%s has no valid pubkey (64 hex digits)", name)
		case m.APIKey == "":
			return fmt.Errorf("%s has no API key", name)
		}
		found = found || c.Default == m.ID || c.Default == m.Slug
	}
	if !found {
		return fmt.Errorf("the default mesh %q is not one of its meshes", c.Default)
	}
	return nil
}

// Save writes config.json atomically with mode 0600 (dir 0700).
func (h Home) Save(c *Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return h.writeSecret(configFile, append(b, '\n'))
}

// Identity loads the ed25519 identity (ErrNoIdentity when none was made).
func (h Home) Identity() (meshcrypto.Identity, error) {
	b, err := readSecret(filepath.Join(h.Dir, identityFile))
	if errors.Is(err, os.ErrNotExist) {
		return meshcrypto.Identity{}, ErrNoIdentity
	}
	if err != nil {
		return meshcrypto.Identity{}, err
	}
	id, err := meshcrypto.ParseSecretKeyHex(strings.TrimSpace(string(b)))
	if err != nil {
		return meshcrypto.Identity{}, fmt.Errorf("%s is damaged: %w", filepath.Join(h.Dir, identityFile), err)
	}
	return id, nil
}

// ErrNoIdentity means no identity has been made yet (join makes one).
var ErrNoIdentity = errors.New("no identity yet: run `claudemesh join <invite>`")

// LoadOrCreateIdentity returns the identity, making and storing one (0600)
// when there is none. created says which.
func (h Home) LoadOrCreateIdentity() (id meshcrypto.Identity, created bool, err error) {
	id, err = h.Identity()
	if !errors.Is(err, ErrNoIdentity) {
		return id, false, err
	}
	id, err = meshcrypto.GenerateIdentity()
	if err != nil {
		return id, false, err
	}
	if err := h.writeSecret(identityFile, []byte(id.SecretKeyHex()+"\n")); err != nil {
		return id, false, err
	}
	return id, true, nil
}

// writeSecret writes name in the config dir through a 0600 temp file and a
// rename, so a crash never leaves a half-written or world-readable file.
func (h Home) writeSecret(name string, b []byte) error {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", h.Dir, err)
	}
	if err := os.Chmod(h.Dir, 0o700); err != nil { //nolint:gosec // G302: a folder needs its x bit; 0700 is owner-only

		return err
	}
	return WriteFileAtomic(filepath.Join(h.Dir, name), b)
}

// WriteFileAtomic writes path through a 0600 temp file in the same folder,
// synced and renamed into place, so a crash never leaves a half-written or
// world-readable file. The folder must exist.
func WriteFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close() // the Chmod error is the one to report
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the Write error is the one to report
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close() // the Sync error is the one to report
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readSecret reads a config file (both hold secrets: the identity's
// private key, the API keys), refusing one that other users can read, as
// ssh refuses such a private key: it may have been copied already, and
// using it silently would hide that. It also refuses anything implausibly
// large.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if runtime.GOOS != "windows" { // mode bits carry no access rules there
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			return nil, &FileError{Path: path,
				Problem: fmt.Sprintf("can be read by other users (mode %04o), and it holds a secret", perm),
				Fix:     "claudemesh refuses to use it, as ssh does such a key: run `chmod 600 " + path + "` (and if others may have read it, leave your meshes and join again)"}
		}
	}
	const limit = 4 << 20
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// Select picks a mesh by slug or id, or the default when sel is empty.
func (c *Config) Select(sel string) (*Mesh, error) {
	if len(c.Meshes) == 0 {
		return nil, ErrNoMesh
	}
	if sel == "" {
		sel = c.Default
		if sel == "" {
			return &c.Meshes[0], nil
		}
	}
	for i := range c.Meshes {
		if c.Meshes[i].ID == sel {
			return &c.Meshes[i], nil
		}
	}
	var found *Mesh
	for i := range c.Meshes {
		if c.Meshes[i].Slug == sel {
			if found != nil {
				return nil, fmt.Errorf("two meshes are called %q: pass --mesh with the mesh id (see `claudemesh list`)", sel)
			}
			found = &c.Meshes[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no joined mesh is called %q: see `claudemesh list`", sel)
	}
	return found, nil
}

// Upsert adds or replaces the mesh with m's id (and server), keeping the
// default, or making m the default when it is the first.
func (c *Config) Upsert(m Mesh) {
	for i := range c.Meshes {
		if c.Meshes[i].ID == m.ID && c.Meshes[i].Server == m.Server {
			c.Meshes[i] = m
			return
		}
	}
	c.Meshes = append(c.Meshes, m)
	if c.Default == "" {
		c.Default = m.ID
	}
}
