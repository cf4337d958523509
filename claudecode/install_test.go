package claudecode

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureHome copies the fixture settings into a temp home.
func fixtureHome(t *testing.T, withFiles bool) (Paths, map[string][]byte) {
	t.Helper()
	home, cfg := t.TempDir(), t.TempDir()
	p := DefaultPaths(home, cfg)
	orig := map[string][]byte{}
	if withFiles {
		for src, dst := range map[string]string{"claude.json": p.ClaudeJSON, "settings.json": p.Settings} {
			b, err := os.ReadFile(filepath.Join("testdata", "settings", src))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o600); err != nil {
				t.Fatal(err)
			}
			orig[dst] = b
		}
	}
	return p, orig
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s is not JSON: %v\n%s", path, err, b)
	}
	return v
}

// TestInstallKeepsTheRest: install on files with other servers and hooks
// keeps them, shows before it writes, is idempotent, and uninstall gives
// the files back byte for byte.
func TestInstallKeepsTheRest(t *testing.T) {
	p, orig := fixtureHome(t, true)
	shown, err := Install(p, false, false)
	if err != nil {
		t.Fatal(err)
	}
	backups := 0
	for _, c := range shown {
		if strings.HasPrefix(c.What, "back up") {
			backups++
		}
	}
	if len(shown) != 7 || backups != 2 { // server, two hooks, allow rule, skill; two backups
		t.Fatalf("shown %v", shown)
	}
	for path, b := range orig {
		if now, _ := os.ReadFile(path); string(now) != string(b) {
			t.Fatalf("install without --write changed %s", path)
		}
	}
	if _, err := Install(p, false, true); err != nil {
		t.Fatal(err)
	}
	cj := readJSON(t, p.ClaudeJSON)
	servers := cj["mcpServers"].(map[string]any)
	if servers["github"] == nil || servers["claudemesh"] == nil || cj["projects"] == nil {
		t.Fatalf("mcpServers after install: %v", servers)
	}
	settings, _ := os.ReadFile(p.Settings)
	for _, want := range []string{"notify-send", "audit-bash.sh", HookIdle, HookWorking, AllowRule, "Bash(go test:*)", "bär"} {
		if !strings.Contains(string(settings), want) {
			t.Errorf("settings after install lack %q:\n%s", want, settings)
		}
	}
	if b, _ := os.ReadFile(p.ClaudeJSON + backupSuffix); string(b) != string(orig[p.ClaudeJSON]) {
		t.Error("no backup of ~/.claude.json")
	}
	if _, err := os.Stat(p.Skill); err != nil {
		t.Fatal(err)
	}
	installed, _ := os.ReadFile(p.Settings)

	// Again: nothing to do, nothing changes.
	again, err := Install(p, false, true)
	if err != nil || len(again) != 0 {
		t.Fatalf("second install: %v %v", again, err)
	}
	if b, _ := os.ReadFile(p.Settings); string(b) != string(installed) {
		t.Fatal("a second install changed settings.json")
	}

	if _, err := Uninstall(p, true); err != nil {
		t.Fatal(err)
	}
	for path, b := range orig {
		if now, _ := os.ReadFile(path); string(now) != string(b) {
			t.Errorf("uninstall did not restore %s:\n%s\nwant:\n%s", path, now, b)
		}
	}
	if _, err := os.Stat(p.Skill); !os.IsNotExist(err) {
		t.Error("the skill file is still there")
	}
	if _, err := os.Stat(filepath.Dir(p.Skill)); !os.IsNotExist(err) {
		t.Error("the skill dir is still there")
	}
}

// TestInstallFromNothing: install creates the files; uninstall removes
// them again; --no-hooks adds no hooks.
func TestInstallFromNothing(t *testing.T) {
	p, _ := fixtureHome(t, false)
	if _, err := Install(p, true, true); err != nil {
		t.Fatal(err)
	}
	if s := readJSON(t, p.Settings); s["hooks"] != nil || s["permissions"] == nil {
		t.Fatalf("settings with --no-hooks: %v", s)
	}
	if _, err := Uninstall(p, true); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p.ClaudeJSON, p.Settings, p.Skill, p.State} {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s is still there", f)
		}
	}
}

// TestInstallLeavesAnotherServer: a claudemesh entry the user wrote is not
// replaced, nor removed by uninstall; a hook that already runs the command
// is not added twice.
func TestInstallLeavesAnotherServer(t *testing.T) {
	p, _ := fixtureHome(t, false)
	mine := "{\n  \"mcpServers\": {\n    \"claudemesh\": {\n      \"command\": \"/opt/bin/claudemesh\",\n      \"args\": [\n        \"mcp\",\n        \"--mesh\",\n        \"work\"\n      ]\n    }\n  }\n}\n"
	hooks := "{\n  \"hooks\": {\n    \"Stop\": [\n      {\n        \"matcher\": \"\",\n        \"hooks\": [\n          {\n            \"type\": \"command\",\n            \"command\": \"claudemesh hook idle\"\n          }\n        ]\n      }\n    ]\n  }\n}\n"
	_ = os.MkdirAll(filepath.Dir(p.Settings), 0o700)
	if err := os.WriteFile(p.ClaudeJSON, []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Settings, []byte(hooks), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Install(p, false, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p.ClaudeJSON); string(b) != mine {
		t.Fatalf("install replaced the user's server:\n%s", b)
	}
	if b, _ := os.ReadFile(p.Settings); strings.Count(string(b), HookIdle) != 1 || !strings.Contains(string(b), HookWorking) {
		t.Fatalf("hooks after install:\n%s", b)
	}
	if _, err := Uninstall(p, true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p.ClaudeJSON); string(b) != mine {
		t.Fatalf("uninstall touched the user's server:\n%s", b)
	}
	if b, _ := os.ReadFile(p.Settings); string(b) != hooks {
		t.Fatalf("uninstall touched the user's hook:\n%s", b)
	}
}
