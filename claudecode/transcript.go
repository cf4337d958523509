// Package claudecode is what claudemesh knows about Claude Code itself:
// its hook payloads, its session transcripts (status inference), and its
// settings files (install and uninstall of the MCP server, hooks and skill).
package claudecode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Statuses inferred from a transcript.
const (
	Working = "working"
	Idle    = "idle"
)

// StaleToolUse is how old an unanswered tool call may be and still mean
// "working": past it the session was most likely killed mid-turn.
const StaleToolUse = 15 * time.Minute

// tailBytes is how much of a transcript's end is read: the last assistant
// line is near the end, and transcripts grow to many megabytes.
const tailBytes = 256 << 10

// transcriptLine is the part of a transcript JSONL line we read.
type transcriptLine struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Message   struct {
		Content json.RawMessage `json:"content"`
	} `json:"message"`
}

type contentItem struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Infer reads the end of a transcript and says what the session is doing:
// the last `type: "assistant"` line with a tool_use item in message.content
// means working (a tool call in flight), any other assistant line means
// idle (the turn ended). ok is false when there is no assistant line yet.
// A half-written last line is skipped. A tool call the user interrupted,
// or one older than StaleToolUse by now, is idle.
func Infer(tail []byte, now time.Time) (status string, ok bool) {
	lines := bytes.Split(tail, []byte("\n"))
	interrupted := false
	for i := len(lines) - 1; i >= 0; i-- {
		l := bytes.TrimSpace(lines[i])
		if len(l) == 0 || l[0] != '{' {
			continue
		}
		var tl transcriptLine
		if err := json.Unmarshal(l, &tl); err != nil {
			continue // half-written, or cut by the tail window
		}
		switch tl.Type {
		case "user":
			if bytes.Contains(tl.Message.Content, []byte("[Request interrupted by user")) {
				interrupted = true
			}
		case "assistant":
			if !hasToolUse(tl.Message.Content) || interrupted {
				return Idle, true
			}
			if !tl.Timestamp.IsZero() && now.Sub(tl.Timestamp) > StaleToolUse {
				return Idle, true
			}
			return Working, true
		}
	}
	return "", false
}

func hasToolUse(content json.RawMessage) bool {
	var items []contentItem
	if json.Unmarshal(content, &items) != nil {
		return false // a plain string: text only
	}
	for _, it := range items {
		if it.Type == "tool_use" {
			return true
		}
	}
	return false
}

// ProjectDirs are the candidate transcript directories of a working
// directory: ~/.claude/projects/<cwd with / and : replaced by ->, and the
// form newer Claude Code versions use (every other non-alphanumeric too).
func ProjectDirs(home, cwd string) []string {
	base := filepath.Join(home, ".claude", "projects")
	a := strings.NewReplacer("/", "-", ":", "-", "\\", "-").Replace(cwd)
	b := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, cwd)
	if a == b {
		return []string{filepath.Join(base, a)}
	}
	return []string{filepath.Join(base, a), filepath.Join(base, b)}
}

// Transcript picks the session's transcript in dirs: <sessionID>.jsonl
// when it exists, else the newest *.jsonl.
func Transcript(dirs []string, sessionID string) (string, bool) {
	var best string
	var bestAt time.Time
	for _, d := range dirs {
		if sessionID != "" {
			p := filepath.Join(d, sessionID+".jsonl")
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
		}
		ms, _ := filepath.Glob(filepath.Join(d, "*.jsonl"))
		for _, m := range ms {
			fi, err := os.Stat(m)
			if err == nil && fi.ModTime().After(bestAt) {
				best, bestAt = m, fi.ModTime()
			}
		}
	}
	return best, best != ""
}

// ReadTail reads the last tailBytes of a file.
func ReadTail(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	off := max(fi.Size()-tailBytes, 0)
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(f, tailBytes))
}

// WatchOptions configure Watch.
type WatchOptions struct {
	Dirs      []string // ProjectDirs of the session's cwd
	SessionID string   // Claude Code's session id, when known
	Now       func() time.Time
	// Refresh re-reports a standing "working" this often, so the broker's
	// sweeper (STATUS_TTL_SECONDS) does not flip a long tool call to idle.
	Refresh time.Duration
}

// Watch follows the session's transcript with fsnotify and calls report
// with the inferred status once per change (and Refresh-ly while working),
// until ctx ends. Directories that do not exist yet are looked for again
// every few seconds.
func Watch(ctx context.Context, opt WatchOptions, report func(status string)) error {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Refresh <= 0 {
		opt.Refresh = 30 * time.Second
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	watched := map[string]bool{}
	addDirs := func() {
		for _, d := range opt.Dirs {
			if !watched[d] && w.Add(d) == nil {
				watched[d] = true
			}
		}
	}
	last := ""
	var lastAt time.Time
	check := func() {
		p, ok := Transcript(opt.Dirs, opt.SessionID)
		if !ok {
			return
		}
		tail, err := ReadTail(p)
		if err != nil {
			return
		}
		st, ok := Infer(tail, opt.Now())
		if !ok {
			return
		}
		if st != last || (st == Working && opt.Now().Sub(lastAt) >= opt.Refresh) {
			last, lastAt = st, opt.Now()
			report(st)
		}
	}
	addDirs()
	check()
	tick := time.NewTicker(min(opt.Refresh, 5*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if strings.HasSuffix(ev.Name, ".jsonl") {
				check()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				check()
			}
		case <-tick.C:
			addDirs()
			check()
		}
	}
}
