package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/peer"
)

// TestRunInstallUninstall drives install and uninstall through their run
// functions in a temporary HOME: both preview without Write, and install
// then uninstall leaves a file the user wrote byte-identical.
func TestRunInstallUninstall(t *testing.T) {
	home, dir := t.TempDir(), t.TempDir()
	env := map[string]string{"HOME": home, "CLAUDEMESH_CONFIG_DIR": dir}
	a := &app{env: Env{Getenv: func(k string) string { return env[k] }, Now: time.Now}, home: peer.Home{Dir: dir}}
	settings := filepath.Join(home, ".claude", "settings.json")
	if err := os.MkdirAll(filepath.Dir(settings), 0o700); err != nil {
		t.Fatal(err)
	}
	before := []byte(`{"env":{"GREETING":"gr\u00fc\u00df"},"permissions":{"allow":["Bash(ls)"]}}`)
	if err := os.WriteFile(settings, before, 0o600); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		b, err := os.ReadFile(settings)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	steps := []struct {
		name   string
		run    func(ioStreams) error
		says   string
		intact bool // settings.json still holds the user's bytes
	}{
		{"install previews", func(s ioStreams) error { return runInstall(&installOptions{app: a, io: s}) }, "claudemesh install would:", true},
		{"install writes", func(s ioStreams) error { return runInstall(&installOptions{app: a, io: s, Write: true}) }, "installed:", false},
		{"uninstall previews", func(s ioStreams) error { return runUninstall(&uninstallOptions{app: a, io: s}) }, "claudemesh uninstall would:", false},
		{"uninstall writes", func(s ioStreams) error { return runUninstall(&uninstallOptions{app: a, io: s, Write: true}) }, "uninstalled:", true},
	}
	for _, st := range steps {
		var b buffers
		if err := st.run(b.io("")); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !strings.Contains(b.out.String(), st.says) {
			t.Errorf("%s printed %q, want %q", st.name, b.out.String(), st.says)
		}
		if got := read(); (got == string(before)) != st.intact {
			t.Errorf("%s: settings.json = %s", st.name, got)
		}
	}
	if _, err := os.Stat(filepath.Join(home, ".claude.json")); !os.IsNotExist(err) {
		t.Errorf("~/.claude.json, absent before install, is there after uninstall (%v)", err)
	}
	var v buffers
	if err := runVersion(&versionOptions{io: v.io("")}); err != nil || !strings.HasPrefix(v.out.String(), "claudemesh ") {
		t.Errorf("version printed %q (%v)", v.out.String(), err)
	}
}
