package peer

import (
	"errors"
	"os"
	"path/filepath"
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
	if err := h.Save(&Config{Meshes: []Mesh{{ID: "1", APIKey: "cm_secret"}}}); err != nil {
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
