package claudecode

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzInstallUninstall: for any settings.json install accepts, install
// then uninstall entry by entry (the path for a file edited since) gives
// back JSON that means the same as the original, and the exact path gives
// back its bytes.
func FuzzInstallUninstall(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, "{\n  \"hooks\": {}\n}\n", `{"permissions":{"allow":[]}}`, `{ "hooks" : { "Stop" : [ ] } }`,
		`{"hooks":{"Stop":[{"hooks":[{"type":"command","command":"claudemesh hook idle"}]}]}}`, "{\"a\":\"\\u00e9\",\"b\":[1,2,{}]}",
		"{\r\n\t\"permissions\": {\r\n\t\t\"allow\": [\"x\"]\r\n\t}\r\n}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, orig []byte) {
		for _, exact := range []bool{true, false} {
			home, cfg := t.TempDir(), t.TempDir()
			p := DefaultPaths(home, cfg)
			if err := os.MkdirAll(filepath.Dir(p.Settings), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p.Settings, orig, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Install(p, false, true); err != nil {
				return // not JSON, or not a shape install can edit
			}
			installed, _ := os.ReadFile(p.Settings)
			var v any
			if err := json.Unmarshal(installed, &v); err != nil {
				t.Fatalf("install wrote invalid JSON: %v\n%q\nfrom %q", err, installed, orig)
			}
			if !exact {
				m, err := loadManifest(p.State)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range m.Files {
					r.InstalledSHA256 = ""
				}
				if err := saveManifest(p.State, m); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := Uninstall(p, true); err != nil {
				t.Fatalf("uninstall: %v (original %q, installed %q)", err, orig, installed)
			}
			got, _ := os.ReadFile(p.Settings)
			if exact {
				if string(got) != string(orig) {
					t.Fatalf("exact uninstall: %q, want %q", got, orig)
				}
				continue
			}
			if len(bytes.TrimSpace(orig)) == 0 {
				orig = []byte("{}") // a blank file is read as an empty object
			}
			var a, b any
			errA, errB := json.Unmarshal(got, &a), json.Unmarshal(orig, &b)
			if errA == nil && errB == nil && reflect.DeepEqual(a, b) {
				continue
			}
			t.Fatalf("uninstall (exact %v) gave %q\nfrom installed %q\nwant the meaning of %q", exact, got, installed, orig)
		}
	})
}
