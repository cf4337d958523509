package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrokenLocalFilesExitOneWithTheFix: an identity key others can read
// is refused with the chmod that fixes it, and a config.json that is not
// JSON is named as such (not as an identity mismatch); both are local
// problems, exit 1.
func TestBrokenLocalFilesExitOneWithTheFix(t *testing.T) {
	t.Parallel()
	srv := fakeJoin(t)
	cases := []struct {
		name  string
		spoil func(dir string) error
		want  []string
	}{
		{"identity 0644", func(dir string) error { return os.Chmod(filepath.Join(dir, "identity.key"), 0o644) },
			[]string{"identity.key at ", "can be read by other users (mode 0644)", "chmod 600 "}},
		{"config truncated", func(dir string) error {
			p := filepath.Join(dir, "config.json")
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, b[:len(b)/2], 0o600)
		}, []string{"config.json at ", "is not valid JSON: unexpected end of JSON input; fix or remove it"}},
		{"config mesh emptied", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"meshes": [{}]}`), 0o600)
		}, []string{"config.json at ", "is damaged: mesh 1", "fix or remove it"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "cfg")
			if _, errs, code := runCLI(t, dir, "join", "cmi_ok", "--server", srv.URL, "--name", "ada"); code != 0 {
				t.Fatal(errs)
			}
			if err := tc.spoil(dir); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"whoami"}, {"peers"}} {
				_, errs, code := runCLI(t, dir, args...)
				if code != ExitUsage || strings.Contains(errs, "is not the one mesh") {
					t.Errorf("%v: exit %d, stderr %q", args, code, errs)
				}
				for _, w := range tc.want {
					if !strings.Contains(errs, w) {
						t.Errorf("%v: stderr %q lacks %q", args, errs, w)
					}
				}
			}
		})
	}
}

// TestUninstallPreviewsWithoutWrite: like install, uninstall only shows
// what it would do unless given --write.
func TestUninstallPreviewsWithoutWrite(t *testing.T) {
	t.Parallel()
	home, cfg := t.TempDir(), t.TempDir()
	run := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		env := map[string]string{"CLAUDEMESH_CONFIG_DIR": cfg, "HOME": home}
		code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] },
			Now: func() time.Time { return time.Now() }})
		return out.String() + errb.String(), code
	}
	settings := filepath.Join(home, ".claude", "settings.json")
	if out, code := run("install", "--write"); code != 0 {
		t.Fatal(out)
	}
	installed, _ := os.ReadFile(settings)
	for _, args := range [][]string{{"uninstall"}, {"uninstall", "--dry-run"}} {
		out, code := run(args...)
		if code != 0 || !strings.Contains(out, "claudemesh uninstall would:") || !strings.Contains(out, "uninstall --write") {
			t.Fatalf("%v: exit %d\n%s", args, code, out)
		}
		if b, _ := os.ReadFile(settings); !bytes.Equal(b, installed) {
			t.Fatalf("%v changed settings.json", args)
		}
	}
	if out, code := run("uninstall", "--write"); code != 0 || !strings.Contains(out, "uninstalled:") {
		t.Fatalf("uninstall --write: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(home, ".claude")); !os.IsNotExist(err) {
		t.Errorf("~/.claude is still there after uninstall (install made it): %v", err)
	}
}
