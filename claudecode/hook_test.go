package claudecode

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHookPayloads: every hook event Claude Code sends, in its documented
// payload shape (testdata/hooks), maps to the status it means; unknown and
// other events map to nothing.
func TestHookPayloads(t *testing.T) {
	want := map[string]string{"UserPromptSubmit": Working, "Stop": Idle}
	files, err := filepath.Glob("testdata/hooks/*.json")
	if err != nil || len(files) < 5 {
		t.Fatalf("fixtures: %v %v", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p := ReadHookPayload(context.Background(), bytes.NewReader(b), time.Second)
			if p.HookEventName+".json" != filepath.Base(f) || p.Cwd != "/home/ada/src/app" || p.SessionID == "" {
				t.Fatalf("payload %+v", p)
			}
			st, ok := StatusForEvent(p.HookEventName)
			if w, known := want[p.HookEventName]; ok != known || st != w {
				t.Fatalf("%s → %q %v, want %q", p.HookEventName, st, ok, w)
			}
		})
	}
}

// TestReadHookPayloadNeverBlocks: a stdin nobody closes, or garbage, gives
// the zero payload after the wait.
func TestReadHookPayloadNeverBlocks(t *testing.T) {
	r, w := io.Pipe()
	defer w.Close()
	done := make(chan HookPayload)
	go func() { done <- ReadHookPayload(context.Background(), r, 50*time.Millisecond) }()
	select {
	case p := <-done:
		if p != (HookPayload{}) {
			t.Fatalf("payload from an open stdin: %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadHookPayload blocked on an open stdin")
	}
	if p := ReadHookPayload(context.Background(), strings.NewReader("not json"), time.Second); p != (HookPayload{}) {
		t.Fatalf("payload from garbage: %+v", p)
	}
}
