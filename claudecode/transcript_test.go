package claudecode

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestInfer: the fixture transcripts, read at a fixed clock.
func TestInfer(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 1, 0, 0, time.UTC) // a minute after the fixtures
	late := at.Add(StaleToolUse + time.Minute)
	for _, tc := range []struct {
		file   string
		now    time.Time
		want   string
		wantOK bool
	}{
		{"tool_in_flight.jsonl", at, Working, true},
		{"tool_result_pending_answer.jsonl", at, Working, true}, // the model is about to answer the tool result
		{"turn_ended.jsonl", at, Idle, true},
		{"half_written.jsonl", at, Working, true}, // the cut line is skipped: the last whole assistant line called a tool
		{"interrupted.jsonl", at, Idle, true},
		{"no_assistant_yet.jsonl", at, "", false},
		{"tool_in_flight.jsonl", late, Idle, true}, // a tool call that old: the session died mid-turn
	} {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/transcripts", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if st, ok := Infer(b, tc.now); st != tc.want || ok != tc.wantOK {
				t.Fatalf("Infer = %q %v, want %q %v", st, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestProjectDirs(t *testing.T) {
	got := ProjectDirs("/home/ada", "/home/ada/src/app")
	if len(got) != 1 || got[0] != "/home/ada/.claude/projects/-home-ada-src-app" {
		t.Fatalf("ProjectDirs = %v", got)
	}
	got = ProjectDirs("/h", "C:/work/my.app")
	if len(got) != 2 || got[0] != "/h/.claude/projects/C--work-my.app" || got[1] != "/h/.claude/projects/C--work-my-app" {
		t.Fatalf("ProjectDirs = %v", got)
	}
}

// TestWatch: the newest transcript is followed; each change is reported
// once.
func TestWatch(t *testing.T) {
	dir := t.TempDir()
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 1, 0, 0, time.UTC) }
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata/transcripts", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	path := filepath.Join(dir, "4f1c2a9e.jsonl")
	if err := os.WriteFile(path, read("tool_in_flight.jsonl"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 10)
	done := make(chan error)
	go func() {
		done <- Watch(ctx, WatchOptions{Dirs: []string{dir}, Now: now, Refresh: time.Hour}, func(s string) { got <- s })
	}()
	next := func() string {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(30 * time.Second):
			t.Fatal("no report")
			return ""
		}
	}
	if s := next(); s != Working {
		t.Fatalf("first report %q", s)
	}
	// The turn ends: the rest of the conversation is appended.
	if err := os.WriteFile(path, read("turn_ended.jsonl"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := next(); s != Idle {
		t.Fatalf("second report %q", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		t.Fatalf("a report without a change: %q", s)
	default:
	}
}
