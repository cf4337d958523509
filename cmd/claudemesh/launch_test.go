package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh-go/peer"
)

// TestLaunch: `claudemesh launch` starts claude with a fresh session id,
// the channel enabled, the server config (not installed yet), claude's own
// arguments, and the session's id and mesh in the environment; claude's
// exit code is its own.
func TestLaunch(t *testing.T) {
	h := newHome(t)
	hm := peer.Home{Dir: h.dir}
	id, _, err := hm.LoadOrCreateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &peer.Config{}
	cfg.Upsert(peer.Mesh{ID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", Slug: "work", Server: "http://127.0.0.1:1", MemberID: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
		DisplayName: "ada", Pubkey: id.PublicKeyHex(), APIKey: "cmk_test"})
	if err := hm.Save(cfg); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	record := filepath.Join(bin, "record")
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > " + record + "\necho \"SID=$CLAUDEMESH_SESSION_ID CH=$CLAUDEMESH_CHANNEL MESH=$CLAUDEMESH_MESH\" >> " + record + "\nexit 7\n"
	if err := os.WriteFile(filepath.Join(bin, "claude"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	h.env = append(h.env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	_, errs, code := h.run("launch", "work", "--", "--model", "opus")
	if code != 7 {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	b, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	got := strings.Join(lines, " ")
	for _, want := range []string{"--session-id ", "--dangerously-load-development-channels server:claudemesh", `--mcp-config {"mcpServers":{"claudemesh":{"args":["mcp"],"command":"claudemesh"}}}`,
		"--model opus", "CH=1 MESH=0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"} {
		if !strings.Contains(got, want) {
			t.Errorf("claude got %q, lacking %q", got, want)
		}
	}
	if lines[0] != "--session-id" || !strings.Contains(got, "SID="+lines[1]+" ") {
		t.Errorf("session id not passed to both claude and the server: %q", got)
	}
}
