package api_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/claudemesh/claudemesh-go/internal/npmtest"
)

// redoclyVersion is the Redocly CLI that lints the contract; the last
// release line that runs on Node.js 20.
const redoclyVersion = "2.77.0"

// TestOpenAPIPassesRedoclyLint: openapi.yaml passes Redocly's recommended
// rules (redocly.yaml) with no errors, as a generated-client user's tooling
// would check it.
func TestOpenAPIPassesRedoclyLint(t *testing.T) {
	if os.Getenv("CLAUDEMESH_TEST_SKIP_NODE") == "1" && os.Getenv("CI") == "" {
		t.Skip("CLAUDEMESH_TEST_SKIP_NODE=1")
	}
	node := npmtest.Node(t)
	dir := npmtest.Install(t, "@redocly/cli", redoclyVersion)
	cli := filepath.Join(dir, "node_modules", "@redocly", "cli", "bin", "cli.js")
	cmd := exec.Command(node, cli, "lint", "--config", filepath.Join("..", "redocly.yaml"), "--format", "json", filepath.Join("..", "openapi.yaml"))
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var report struct {
		Totals struct {
			Errors   int `json:"errors"`
			Warnings int `json:"warnings"`
		} `json:"totals"`
		Problems []struct {
			RuleID   string `json:"ruleId"`
			Severity string `json:"severity"`
			Message  string `json:"message"`
			Location []struct {
				Pointer string `json:"pointer"`
			} `json:"location"`
		} `json:"problems"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("redocly lint: %v (run: %v)\nstdout: %s\nstderr: %s", err, runErr, stdout.String(), stderr.String())
	}
	for _, p := range report.Problems {
		where := ""
		if len(p.Location) > 0 {
			where = p.Location[0].Pointer
		}
		if p.Severity == "error" {
			t.Errorf("%s %s: %s", p.RuleID, where, p.Message)
		} else {
			t.Logf("%s %s %s: %s", p.Severity, p.RuleID, where, p.Message)
		}
	}
	if report.Totals.Errors != 0 && !t.Failed() {
		t.Errorf("redocly lint reports %d errors", report.Totals.Errors)
	}
}
