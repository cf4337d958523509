package web_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestPageReadsTheContract: the page switches optional views on from the
// served openapi.yaml with a small line parser (parseContract in api.js).
// It must see exactly the operations kin-openapi sees, so a route landing
// in the contract (issue #12) switches its view on, and nothing else does.
func TestPageReadsTheContract(t *testing.T) {
	node := needNode(t)
	spec, err := os.ReadFile(filepath.Join("..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The same file with the issue #12 routes added must switch them on.
	extra := strings.Replace(string(spec), "\n  /v1/members:\n", "\n  /v1/meshes/{id}/invites/{inviteId}:\n    delete:\n      responses: {}\n"+
		"  /v1/me/notifications:\n    get:\n      responses: {}\n  /v1/meshes/{id}/leave:\n    post:\n      responses: {}\n  /v1/members:\n", 1)
	for _, tc := range []struct {
		name string
		yaml string
		on   bool
	}{{"served", string(spec), false}, {"with #12 routes", extra, true}} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := openapi3.NewLoader().LoadFromData([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			param := regexp.MustCompile(`\{[^}]+\}`)
			for path, item := range doc.Paths.Map() {
				for m := range item.Operations() {
					want = append(want, strings.ToUpper(m)+" "+param.ReplaceAllString(path, "{}"))
				}
			}
			slices.Sort(want)
			cmd := exec.Command(node, filepath.Join("testdata", "contract_check.mjs"))
			cmd.Stdin = strings.NewReader(tc.yaml)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr.String())
			}
			var got struct {
				Ops                                    []string
				InviteRevoke, Leave, Inbox, InviteList bool
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Ops, want) {
				t.Errorf("page reads operations\n%v\nkin-openapi reads\n%v", got.Ops, want)
			}
			if got.InviteRevoke != tc.on || got.Leave != tc.on || got.Inbox != tc.on {
				t.Errorf("switches %+v, want %v", got, tc.on)
			}
		})
	}
}
