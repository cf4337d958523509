package peer

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestConfigDirPrecedence(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"CLAUDEMESH_CONFIG_DIR": "/a", "XDG_CONFIG_HOME": "/x"}, "/a"},
		{map[string]string{"XDG_CONFIG_HOME": "/x"}, filepath.Join("/x", "claudemesh")},
	}
	for _, tc := range cases {
		got, err := ConfigDir(func(k string) string { return tc.env[k] })
		if err != nil || got != tc.want {
			t.Errorf("ConfigDir(%v) = %q, %v; want %q", tc.env, got, err, tc.want)
		}
	}
}

func TestSelect(t *testing.T) {
	t.Parallel()
	c := &Config{}
	if _, err := c.Select(""); !errors.Is(err, ErrNoMesh) {
		t.Fatalf("empty config: %v", err)
	}
	c.Upsert(Mesh{ID: "1", Slug: "platform", Server: "http://a"})
	c.Upsert(Mesh{ID: "2", Slug: "ops", Server: "http://a"})
	c.Upsert(Mesh{ID: "3", Slug: "ops", Server: "http://b"})
	cases := []struct {
		sel, wantID, wantErr string
	}{
		{"", "1", ""}, // the first joined is the default
		{"platform", "1", ""},
		{"2", "2", ""},
		{"ops", "", "two meshes are called"},
		{"nope", "", "no joined mesh is called"},
	}
	for _, tc := range cases {
		m, err := c.Select(tc.sel)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Select(%q) err = %v, want %q", tc.sel, err, tc.wantErr)
			}
		case err != nil || m.ID != tc.wantID:
			t.Errorf("Select(%q) = %v, %v; want id %s", tc.sel, m, err, tc.wantID)
		}
	}
}

func TestSaveAndIdentityModes(t *testing.T) {
	t.Parallel()
	h := Home{Dir: filepath.Join(t.TempDir(), "cm")}
	if _, err := h.Identity(); !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("no identity yet: %v", err)
	}
	id, created, err := h.LoadOrCreateIdentity()
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	again, created, err := h.LoadOrCreateIdentity()
	if err != nil || created || again.PublicKeyHex() != id.PublicKeyHex() {
		t.Fatalf("reload: %v %v", created, err)
	}
	if err := h.Save(&Config{Meshes: []Mesh{{ID: "1", Server: "http://a", Pubkey: id.PublicKeyHex(), APIKey: "cm_secret"}}}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{"": 0o700, configFile: 0o600, identityFile: 0o600} {
		st, err := os.Stat(filepath.Join(h.Dir, name))
		if err != nil || st.Mode().Perm() != want {
			t.Errorf("%q: mode %v (%v), want %v", name, st.Mode().Perm(), err, want)
		}
	}
	c, err := h.Load()
	if err != nil || len(c.Meshes) != 1 || c.Meshes[0].APIKey != "cm_secret" {
		t.Fatalf("load: %+v %v", c, err)
	}
}

// TestLoadNamesWhatIsWrong: a broken config.json is reported as what it
// is, with its path and what to do, never as something else later on.
func TestLoadNamesWhatIsWrong(t *testing.T) {
	t.Parallel()
	pub := strings.Repeat("ab", 32)
	good := `{"default": "m1", "meshes": [{"id": "m1", "slug": "work", "server": "http://a", "pubkey": "` + pub + `", "apiKey": "cm_x"}]}`
	cases := []struct {
		name, body, want string
	}{
		{"good", good, ""},
		{"empty object", `{}`, ""},
		{"truncated", good[:40], "is not valid JSON: unexpected end of JSON input"},
		{"empty file", ``, "is not valid JSON"},
		{"garbage", "\x00\x01", "is not valid JSON"},
		{"null", `null`, "is not a claudemesh config"},
		{"wrong type", `{"meshes": {}}`, "is not a claudemesh config"},
		{"mesh without anything", `{"meshes": [{}]}`, `mesh 1 ("") has no id`},
		{"mesh without pubkey", strings.Replace(good, pub, "", 1), `mesh 1 ("work") has no valid pubkey`},
		{"pubkey damaged", strings.Replace(good, pub, "zz"+pub[2:], 1), `has no valid pubkey`},
		{"mesh without key", strings.Replace(good, `"cm_x"`, `""`, 1), `has no API key`},
		{"default gone", strings.Replace(good, `"default": "m1"`, `"default": "m2"`, 1), `the default mesh "m2" is not one of its meshes`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := Home{Dir: t.TempDir()}
			path := filepath.Join(h.Dir, configFile)
			if err := os.WriteFile(path, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := h.Load()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var fe *FileError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) ||
				!strings.HasPrefix(err.Error(), "config.json at "+path+" ") || !strings.Contains(err.Error(), "fix or remove it") {
				t.Fatalf("Load: %v, want a FileError with %q", err, tc.want)
			}
			if _, err := h.Open("", nil); !errors.As(err, &fe) {
				t.Fatalf("Open: %v, want the same FileError (not an identity mismatch)", err)
			}
		})
	}
}

// TestSecretFilesOthersCanReadAreRefused: identity.key and config.json
// hold secrets; like ssh with a private key, a file group or others can
// read is refused, with the chmod that fixes it.
func TestSecretFilesOthersCanReadAreRefused(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("no mode bits")
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o400, 0o600} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			h := Home{Dir: filepath.Join(t.TempDir(), "cm")}
			id, _, err := h.LoadOrCreateIdentity()
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Save(&Config{Meshes: []Mesh{{ID: "1", Server: "http://a", Pubkey: id.PublicKeyHex(), APIKey: "cm_secret"}}}); err != nil {
				t.Fatal(err)
			}
			for name, load := range map[string]func() error{
				identityFile: func() error { _, err := h.Identity(); return err },
				configFile:   func() error { _, err := h.Load(); return err },
			} {
				path := filepath.Join(h.Dir, name)
				if err := os.Chmod(path, mode); err != nil {
					t.Fatal(err)
				}
				err := load()
				if mode&0o077 == 0 {
					if err != nil {
						t.Errorf("%s mode %v: %v", name, mode, err)
					}
				} else {
					var fe *FileError
					if !errors.As(err, &fe) || !strings.Contains(err.Error(), "chmod 600 "+path) || !strings.Contains(err.Error(), "read by other users") {
						t.Errorf("%s mode %v: %v, want a refusal naming chmod 600", name, mode, err)
					}
					if name == identityFile {
						if _, _, err := h.LoadOrCreateIdentity(); !errors.As(err, &fe) {
							t.Errorf("LoadOrCreateIdentity with %v: %v", mode, err)
						}
					}
				}
				if err := os.Chmod(path, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
