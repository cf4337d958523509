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
// It must see exactly the operations kin-openapi sees, so the mesh
// administration and cross-mesh inbox views are on with the served
// contract, and off against a broker whose contract lacks those routes.
func TestPageReadsTheContract(t *testing.T) {
	node := needNode(t)
	spec, err := os.ReadFile(filepath.Join("..", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	older := withoutPaths(t, string(spec), "/v1/meshes/{id}/invites/{inviteId}", "/v1/meshes/{id}/archive", "/v1/meshes/{id}/leave",
		"/v1/me/notifications", "/v1/me/notifications/read", "/v1/me/topics", "/v1/me/topics/{id}/read")
	older = strings.Replace(older, "\n    patch:\n      tags: [meshes]\n      operationId: updateMesh\n", "\n    x-no-patch:\n      tags: [meshes]\n      operationId: updateMesh\n", 1)
	for _, tc := range []struct {
		name string
		yaml string
		on   bool
	}{{"served", string(spec), true}, {"without the mesh administration routes", older, false}} {
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
				Ops                                                               []string
				InviteRevoke, Leave, Inbox, InviteList, Rename, Archive, MyTopics bool
			}
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Ops, want) {
				t.Errorf("page reads operations\n%v\nkin-openapi reads\n%v", got.Ops, want)
			}
			if got.InviteRevoke != tc.on || got.Leave != tc.on || got.Inbox != tc.on || got.Rename != tc.on || got.Archive != tc.on || got.MyTopics != tc.on {
				t.Errorf("switches %+v, want %v", got, tc.on)
			}
		})
	}
}

// withoutPaths drops whole path items from an openapi.yaml written as ours
// is (paths at two spaces).
func withoutPaths(t *testing.T, spec string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		start := strings.Index(spec, "\n  "+p+":\n")
		if start < 0 {
			t.Fatalf("openapi.yaml has no path %s", p)
		}
		rest := spec[start+1:]
		end := regexp.MustCompile(`\n(  /|\S)`).FindStringIndex(rest)
		if end == nil {
			t.Fatalf("no end of path %s", p)
		}
		spec = spec[:start+1] + rest[end[0]+1:]
	}
	return spec
}
