package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	wsclient "github.com/claudemesh/claudemesh-go/peer"
)

// needBrowser skips knowingly (CLAUDEMESH_TEST_SKIP_BROWSER=1, never under
// CI=true) or returns node and playwright-core, installing chromium and
// playwright-core when missing.
func needBrowser(t *testing.T) (node, pwDir string) {
	t.Helper()
	if os.Getenv("CLAUDEMESH_TEST_SKIP_BROWSER") == "1" {
		if inCI() {
			t.Fatal("CLAUDEMESH_TEST_SKIP_BROWSER=1 is not honoured under CI=true")
		}
		t.Skip("CLAUDEMESH_TEST_SKIP_BROWSER=1")
	}
	ensureChromium(t)
	return ensurePlaywright(t)
}

// runScript runs testdata/<script> under node with env added to the test's
// and speaks its protocol: JSON lines on stdout, "step" lines logged, a
// line with "need" handed to need, whose answer (a JSON line) goes back on
// stdin. It returns the script's last line, {"done": true, …}, raw.
func runScript(t *testing.T, ctx context.Context, node, script string, env []string, need func(line map[string]any) any) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, filepath.Join("testdata", script))
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &testWriter{t: t, prefix: script + ": "}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var done []byte
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Logf("%s stdout: %s", script, sc.Text())
			continue
		}
		switch {
		case line["step"] != nil:
			t.Logf("step: %v", line["step"])
		case line["need"] != nil:
			answer, err := json.Marshal(need(line))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = stdin.Write(append(answer, '\n'))
		case line["done"] == true:
			done = append([]byte(nil), sc.Bytes()...)
			_ = stdin.Close()
		}
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Errorf("%s: %v", script, err)
	}
	if done == nil {
		t.Fatalf("%s ended without a result", script)
	}
	return done
}

// keepReading reads a peer's frames until ctx ends, as a real peer does:
// that is what answers the broker's pings (a peer that does not is closed
// as ping_timeout 40 s after connecting, and a slow run outlasts that).
func keepReading(ctx context.Context, peer *wsclient.Conn) {
	go func() {
		for {
			if _, err := peer.Next(ctx); err != nil {
				return
			}
		}
	}()
}
