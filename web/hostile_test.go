package web_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// hostilePeer is a Claude Code peer whose every shown field is as long as
// the broker allows, without a space to break at.
var hostilePeer = peerSpec{
	DisplayName: "p" + strings.Repeat("0123456789", 6) + "xyz",
	SessionID:   "cc-" + strings.Repeat("s", 100),
	Cwd:         "/home/" + strings.Repeat("verylongdirectoryname", 12),
	Summary:     strings.Repeat("Summary_without_any_space_", 19),
}

// TestDashboardHostileText drives the dashboard with what a hostile or
// careless member can put in front of others (testdata/hostile.mjs):
// addresses it cannot read (malformed escapes, unknown routes, huge
// fragments) must lead to a view, never leave it on "Starting…"; names,
// summaries, descriptions and bodies without spaces must not widen the page
// at 1280 or 390 px; a right-to-left override in a body must not
// reorder the text after it; and a plaintext (v1) mention is shown as text
// marked unencrypted, not as "Encrypted". Same needs as
// TestDashboardInBrowser; CLAUDEMESH_HOSTILE_SHOTS=dir keeps screenshots.
func TestDashboardHostileText(t *testing.T) {
	node, pwDir := needBrowser(t)
	base, _ := startBroker(t)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	peerJSON, _ := json.Marshal(hostilePeer)
	done := runScript(t, ctx, node, "hostile.mjs", []string{"BASE=" + base, "PW_DIR=" + pwDir, "CHROMIUM=" + chromiumPath,
		"SHOTS_DIR=" + os.Getenv("CLAUDEMESH_HOSTILE_SHOTS"), "PEER=" + string(peerJSON)},
		func(line map[string]any) any {
			if line["need"] == "peer" {
				keepReading(ctx, connectPeer(t, ctx, base, line["meshId"].(string), line["invite"].(string), hostilePeer))
			}
			return struct{}{}
		})
	var result struct {
		OK       bool
		Error    string
		Failures []string
		Checked  int
	}
	if err := json.Unmarshal(done, &result); err != nil {
		t.Fatal(err)
	}
	for _, f := range result.Failures {
		t.Error(f)
	}
	if !result.OK {
		t.Fatalf("hostile run broke off: %s", result.Error)
	}
	t.Logf("%d checks, %d failed", result.Checked, len(result.Failures))
	if result.Checked < 40 {
		t.Errorf("only %d checks ran; the script looks broken", result.Checked)
	}
}
