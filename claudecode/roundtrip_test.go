package claudecode

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeHome puts files (paths relative to home) into a fresh temp home.
func writeHome(t *testing.T, files map[string]string) (home string, p Paths) {
	t.Helper()
	home = t.TempDir()
	p = DefaultPaths(home, filepath.Join(t.TempDir(), "claudemesh"))
	for rel, body := range files {
		path := filepath.Join(home, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return home, p
}

// snapshot is every file and folder under dir (relative path → bytes;
// folders map to "/").
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			out[rel] = "/"
			return nil
		}
		b, err := os.ReadFile(path)
		out[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("%s: %s is gone", what, k)
		} else if g != w {
			t.Errorf("%s: %s changed:\n%s\nwant:\n%s", what, k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s was left behind", what, k)
		}
	}
}

// TestInstallUninstallRoundTrip: install followed by uninstall gives back
// the home as it was, byte for byte: entries the user wrote before install
// (even ones identical to install's) stay, formatting and escapes stay,
// files and folders install made are gone again.
func TestInstallUninstallRoundTrip(t *testing.T) {
	fixture := func(name string) string {
		b, err := os.ReadFile(filepath.Join("testdata", "settings", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	userHooks := `{
  "hooks": {
    "Stop": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "claudemesh hook idle"
          }
        ]
      }
    ]
  },
  "permissions": {
    "allow": [
      "mcp__claudemesh__*"
    ]
  }
}
`
	tests := []struct {
		name    string
		files   map[string]string
		noHooks bool
		// mustKeep are substrings of settings.json install must not rewrite.
		mustKeep []string
	}{
		{name: "nothing there", files: nil},
		{name: "nothing there, no hooks", files: nil, noHooks: true},
		{name: "fixtures", files: map[string]string{".claude.json": fixture("claude.json"), ".claude/settings.json": fixture("settings.json")}},
		{name: "user's own Stop hook and allow rule, identical to install's", files: map[string]string{".claude/settings.json": userHooks}},
		{name: "user's own claudemesh server, identical to install's", files: map[string]string{".claude.json": "{\n  \"mcpServers\": {\n    \"claudemesh\": {\n      \"command\": \"claudemesh\",\n      \"args\": [\n        \"mcp\"\n      ]\n    }\n  }\n}\n"}},
		{
			name:     "compact objects and \\u escapes",
			files:    map[string]string{".claude/settings.json": `{"model":"opus","env":{"GREETING":"gr\u00fc\u00df dich","PATH_X":"a\/b"},"permissions":{"allow":["Bash(ls)"],"deny":[]}}`},
			mustKeep: []string{`"env":{"GREETING":"gr\u00fc\u00df dich","PATH_X":"a\/b"}`, `"deny":[]`},
		},
		{
			name:     "four-space indent, no final newline, empty containers",
			files:    map[string]string{".claude/settings.json": "{\n    \"hooks\": {},\n    \"permissions\": {\n        \"allow\": []\n    }\n}", ".claude.json": "{ }"},
			mustKeep: []string{"{\n    \"hooks\": {"},
		},
		{name: "another skill already there", files: map[string]string{".claude/skills/other/SKILL.md": "mine\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home, p := writeHome(t, tt.files)
			before := snapshot(t, home)
			if _, err := Install(p, tt.noHooks, true); err != nil {
				t.Fatal(err)
			}
			if _, err := Install(p, tt.noHooks, true); err != nil { // again: a no-op
				t.Fatal(err)
			}
			settings, _ := os.ReadFile(p.Settings)
			for _, s := range tt.mustKeep {
				if !bytes.Contains(settings, []byte(s)) {
					t.Errorf("install rewrote %q:\n%s", s, settings)
				}
			}
			checkInstalled(t, p, tt.noHooks)
			if _, err := Uninstall(p, true); err != nil {
				t.Fatal(err)
			}
			sameTree(t, "after uninstall", snapshot(t, home), before)
		})
	}
}

// TestUninstallEntryByEntry: the same round trips when uninstall cannot
// simply put the backup back (the record of the installed bytes is gone)
// and takes install's entries out one by one: every byte outside them
// still comes back, and the backups stay.
func TestUninstallEntryByEntry(t *testing.T) {
	files := map[string]map[string]string{
		"nothing there":      nil,
		"compact":            {".claude/settings.json": `{"model":"opus","env":{"A":"\u00e9"},"permissions":{"allow":["Bash(ls)"]},"hooks":{"Stop":[{"hooks":[{"type":"command","command":"x"}]}]}}`},
		"spaced compact":     {".claude/settings.json": `{ "model": "opus", "permissions": { "allow": [ "Bash(ls)" ] } }` + "\n"},
		"indented":           {".claude/settings.json": "{\n\t\"hooks\": {},\n\t\"permissions\": {\n\t\t\"allow\": []\n\t}\n}", ".claude.json": "{\n  \"mcpServers\": {}\n}\n"},
		"user's own entries": {".claude/settings.json": "{\n  \"hooks\": {\n    \"Stop\": [\n      {\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"claudemesh hook idle\"\n          }\n        ]\n      }\n    ]\n  },\n  \"permissions\": {\n    \"allow\": [\n      \"mcp__claudemesh__*\"\n    ]\n  }\n}\n"},
	}
	for name, fs := range files {
		t.Run(name, func(t *testing.T) {
			home, p := writeHome(t, fs)
			before := snapshot(t, home)
			if _, err := Install(p, false, true); err != nil {
				t.Fatal(err)
			}
			m, err := loadManifest(p.State)
			if err != nil {
				t.Fatal(err)
			}
			want := maps.Clone(before)
			for _, r := range m.Files {
				r.InstalledSHA256 = ""
				if r.Backup != "" {
					rel, _ := filepath.Rel(home, r.Backup)
					want[rel] = before[strings.TrimSuffix(rel, backupSuffix)]
				}
			}
			if err := saveManifest(p.State, m); err != nil {
				t.Fatal(err)
			}
			if _, err := Uninstall(p, true); err != nil {
				t.Fatal(err)
			}
			sameTree(t, "after uninstall", snapshot(t, home), want)
		})
	}
}

// TestUninstallKeepsLaterEdits: the user edits the files after install;
// uninstall takes out only install's entries and leaves the edits (and
// every other byte) alone.
func TestUninstallKeepsLaterEdits(t *testing.T) {
	orig := "{\n  \"model\": \"opus\",\n  \"permissions\": {\n    \"allow\": [\n      \"Bash(ls)\"\n    ]\n  },\n  \"env\": {\"A\": \"\\u00e9\"}\n}\n"
	tests := []struct {
		name string
		edit func(string) string
		want func(string) string // default: edit(orig)
	}{
		{"model changed", func(s string) string { return strings.Replace(s, `"opus"`, `"sonnet"`, 1) }, nil},
		{"a key added at the end", func(s string) string {
			i := strings.LastIndex(s, "}")
			return s[:i] + "  ,\"x\": 1\n}\n"
		}, nil},
		{"a rule added after install's", func(s string) string {
			return strings.Replace(s, `"`+AllowRule+`"`, `"`+AllowRule+`", "Bash(make:*)"`, 1)
		}, func(s string) string { return strings.Replace(s, `"Bash(ls)"`, `"Bash(ls)", "Bash(make:*)"`, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p := writeHome(t, map[string]string{".claude/settings.json": orig})
			if _, err := Install(p, false, true); err != nil {
				t.Fatal(err)
			}
			installed, _ := os.ReadFile(p.Settings)
			edited := tt.edit(string(installed))
			if edited == string(installed) {
				t.Fatal("the edit changed nothing")
			}
			if err := os.WriteFile(p.Settings, []byte(edited), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Uninstall(p, true); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(p.Settings)
			want := tt.edit(orig)
			if tt.want != nil {
				want = tt.want(orig)
			}
			if string(got) != want {
				t.Errorf("after uninstall:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestBackupIsNeverOverwritten: the backup holds the bytes from before
// the first install; a second install (which changes the file again) and
// uninstall do not replace it.
func TestBackupIsNeverOverwritten(t *testing.T) {
	orig := "{\n  \"model\": \"opus\"\n}\n"
	_, p := writeHome(t, map[string]string{".claude/settings.json": orig})
	backup := p.Settings + backupSuffix
	if _, err := Install(p, true, true); err != nil { // no hooks: permissions only
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(backup); string(b) != orig {
		t.Fatalf("backup after the first install:\n%s", b)
	}
	if _, err := Install(p, false, true); err != nil { // now the hooks too
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(backup); string(b) != orig {
		t.Fatalf("the second install overwrote the backup:\n%s", b)
	}
	// The user edits the file; uninstall cannot simply restore the backup,
	// and must not replace it either.
	installed, _ := os.ReadFile(p.Settings)
	if err := os.WriteFile(p.Settings, bytes.Replace(installed, []byte("opus"), []byte("sonnet"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(p, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(backup); string(b) != orig {
		t.Fatalf("uninstall overwrote the backup:\n%s", b)
	}
	if b, _ := os.ReadFile(p.Settings); string(b) != "{\n  \"model\": \"sonnet\"\n}\n" {
		t.Fatalf("after uninstall:\n%s", b)
	}
}

// TestUninstallPreviewChangesNothing: uninstall without write shows what
// it would do and touches nothing.
func TestUninstallPreviewChangesNothing(t *testing.T) {
	home, p := writeHome(t, map[string]string{".claude/settings.json": "{\"model\":\"opus\"}"})
	if _, err := Install(p, false, true); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, home)
	state, _ := os.ReadFile(p.State)
	shown, err := Uninstall(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(shown) == 0 {
		t.Fatal("the preview shows nothing")
	}
	sameTree(t, "after the preview", snapshot(t, home), before)
	if b, _ := os.ReadFile(p.State); !bytes.Equal(b, state) {
		t.Error("the preview changed the install record")
	}
}

// checkInstalled asserts what Claude Code will read after install.
func checkInstalled(t *testing.T, p Paths, noHooks bool) {
	t.Helper()
	var cj struct {
		MCPServers map[string]struct {
			Command string   `json:"command"`
			Args    []string `json:"args"`
		} `json:"mcpServers"`
	}
	var settings struct {
		Hooks map[string][]struct {
			Hooks []struct{ Type, Command string } `json:"hooks"`
		} `json:"hooks"`
		Permissions struct{ Allow []string } `json:"permissions"`
	}
	for path, v := range map[string]any{p.ClaudeJSON: &cj, p.Settings: &settings} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s after install: %v\n%s", path, err, b)
		}
	}
	if s, ok := cj.MCPServers[ServerName]; !ok || s.Command == "" {
		t.Errorf("no claudemesh server after install: %+v", cj)
	}
	if !slices.Contains(settings.Permissions.Allow, AllowRule) {
		t.Errorf("no allow rule after install: %+v", settings.Permissions)
	}
	for _, he := range hookEvents {
		found := false
		for _, e := range settings.Hooks[he.event] {
			for _, h := range e.Hooks {
				found = found || (h.Type == "command" && h.Command == he.command)
			}
		}
		if found == noHooks {
			t.Errorf("%s hook %q present: %v (no hooks: %v)", he.event, he.command, found, noHooks)
		}
	}
	if b, err := os.ReadFile(p.Skill); err != nil || !strings.Contains(string(b), "claudemesh") {
		t.Errorf("skill file: %v", err)
	}
}
