package claudecode

import (
	"os"
	"strings"
	"testing"
)

// TestInstallRefusesWhatItCannotEdit: a file that is not JSON, or whose
// containers have the wrong type, is reported by name and left alone.
func TestInstallRefusesWhatItCannotEdit(t *testing.T) {
	tests := []struct {
		name, file, body, want string
	}{
		{"settings not JSON", ".claude/settings.json", `{"model": "opus",}`, "settings.json is not valid JSON"},
		{"top level an array", ".claude.json", `[]`, "not a JSON object"},
		{"mcpServers an array", ".claude.json", `{"mcpServers": []}`, "mcpServers is not an object"},
		{"allow an object", ".claude/settings.json", `{"permissions": {"allow": {}}}`, "permissions.allow is not an array"},
		{"hooks a string", ".claude/settings.json", `{"hooks": "x"}`, "hooks is not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			home, p := writeHome(t, map[string]string{tt.file: tt.body})
			before := snapshot(t, home)
			for _, write := range []bool{false, true} {
				_, err := Install(p, false, write)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("install (write %v): %v, want %q", write, err, tt.want)
				}
			}
			sameTree(t, "after a refused install", snapshot(t, home), before)
			if _, err := os.Stat(p.State); !os.IsNotExist(err) {
				t.Error("a refused install left a record")
			}
		})
	}
}

// TestUninstallWithoutRecord: with no install record, uninstall removes
// nothing, and names the entries that look like install's.
func TestUninstallWithoutRecord(t *testing.T) {
	body := "{\n  \"permissions\": {\n    \"allow\": [\n      \"mcp__claudemesh__*\"\n    ]\n  }\n}\n"
	home, p := writeHome(t, map[string]string{".claude/settings.json": body})
	before := snapshot(t, home)
	cs, err := Uninstall(p, true)
	if err != nil {
		t.Fatal(err)
	}
	if Changed(cs) || len(cs) != 1 || !strings.Contains(cs[0].What, "no record") {
		t.Fatalf("changes: %+v", cs)
	}
	sameTree(t, "after uninstall", snapshot(t, home), before)
}

// TestUninstallAfterVersion1Install: the first record format listed only
// the containers install created; uninstall still removes install's
// entries from the files it changed, as that version did.
func TestUninstallAfterVersion1Install(t *testing.T) {
	home, p := writeHome(t, map[string]string{
		".claude/settings.json":              "{\n  \"model\": \"opus\",\n  \"permissions\": {\n    \"allow\": [\n      \"mcp__claudemesh__*\"\n    ]\n  }\n}\n",
		".claude/skills/claudemesh/SKILL.md": Skill,
	})
	if err := os.MkdirAll(strings.TrimSuffix(p.State, "/claude-install.json"), 0o700); err != nil {
		t.Fatal(err)
	}
	legacy := `{"created": {"` + p.Settings + `": ["permissions", "permissions.allow"]}}`
	if err := os.WriteFile(p.State, []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Uninstall(p, true); err != nil {
		t.Fatal(err)
	}
	sameTree(t, "after uninstall", snapshot(t, home), map[string]string{
		".claude":                   "/",
		".claude/skills":            "/",
		".claude/skills/claudemesh": "/",
		".claude/settings.json":     "{\n  \"model\": \"opus\"\n}\n",
	})
}
