package claudecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// What install adds. The hook commands are upstream's names.
const (
	ServerName   = "claudemesh"
	AllowRule    = "mcp__claudemesh__*"
	HookWorking  = "claudemesh hook working"
	HookIdle     = "claudemesh hook idle"
	backupSuffix = ".claudemesh-backup"
)

// hookEvents pairs each hook event with the command install adds to it.
var hookEvents = []struct{ event, command string }{
	{"UserPromptSubmit", HookWorking},
	{"Stop", HookIdle},
}

// Paths are the files install touches. State is claudemesh's own record
// (in its config dir) of what install added, so uninstall removes that
// and only that.
type Paths struct {
	ClaudeJSON string // ~/.claude.json: mcpServers
	Settings   string // ~/.claude/settings.json: hooks, permissions.allow
	Skill      string // ~/.claude/skills/claudemesh/SKILL.md
	State      string
}

// DefaultPaths are the paths for a home directory and claudemesh config dir.
func DefaultPaths(home, configDir string) Paths {
	return Paths{
		ClaudeJSON: filepath.Join(home, ".claude.json"),
		Settings:   filepath.Join(home, ".claude", "settings.json"),
		Skill:      filepath.Join(home, ".claude", "skills", "claudemesh", "SKILL.md"),
		State:      filepath.Join(configDir, "claude-install.json"),
	}
}

// Change is one edit, described for a person. A Note changes nothing: it
// says what is left alone, or where a backup is.
type Change struct {
	File string
	What string
	Note bool
}

// Changed reports whether any of cs is an edit rather than a note.
func Changed(cs []Change) bool {
	return slices.ContainsFunc(cs, func(c Change) bool { return !c.Note })
}

// want is one entry install puts into a JSON file.
type want struct {
	in      []string // the container, a path of object keys
	key     string   // the member's key when the container is an object
	value   any
	what    string
	present func(d *doc, c *node) bool // the user has one doing the job
}

// container is the kind of container the entry goes into.
func (w want) container() byte {
	if w.key != "" {
		return '{'
	}
	return '['
}

func (w want) entry() entry {
	return entry{In: w.in, Key: w.key, Value: json.RawMessage(render(w.value, style{colon: ":", comma: ","}))}
}

// wanted lists what install puts into the file at path.
func wanted(path string, p Paths, noHooks bool) []want {
	switch path {
	case p.ClaudeJSON:
		return []want{{
			in: []string{"mcpServers"}, key: ServerName, value: serverEntry(),
			what:    `add mcpServers.claudemesh = {"command": "claudemesh", "args": ["mcp"]}`,
			present: func(_ *doc, c *node) bool { return c.find(ServerName) >= 0 },
		}}
	case p.Settings:
		var ws []want
		if !noHooks {
			for _, he := range hookEvents {
				ws = append(ws, want{
					in: []string{"hooks", he.event}, value: hookEntry(he.command),
					what:    fmt.Sprintf("add the %s hook %q", he.event, he.command),
					present: func(d *doc, c *node) bool { return hasHookCommand(d, c, he.command) },
				})
			}
		}
		return append(ws, want{
			in: []string{"permissions", "allow"}, value: AllowRule,
			what: fmt.Sprintf("allow the claudemesh tools: add %q to permissions.allow", AllowRule),
			present: func(d *doc, c *node) bool {
				return slices.ContainsFunc(c.elems, func(e *node) bool { return d.equal(e, AllowRule) })
			},
		})
	}
	return nil
}

func serverEntry() obj {
	return obj{{"command", "claudemesh"}, {"args", []any{"mcp"}}}
}

func hookEntry(command string) obj {
	return obj{{"hooks", []any{obj{{"type", "command"}, {"command", command}}}}}
}

// hasHookCommand reports whether an event's entries run command already.
func hasHookCommand(d *doc, c *node, command string) bool {
	var entries []struct {
		Hooks []struct {
			Command string `json:"command"`
		} `json:"hooks"`
	}
	_ = json.Unmarshal(d.src[c.start:c.end], &entries)
	for _, e := range entries {
		for _, h := range e.Hooks {
			if strings.TrimSpace(h.Command) == command {
				return true
			}
		}
	}
	return false
}

// findEntry is the index in container c of the child install added: the
// member key with value v, or the last element equal to v; -1 if none.
func findEntry(d *doc, c *node, key string, v any) int {
	if c.open == '{' {
		if i := c.find(key); i >= 0 && d.equal(c.members[i].val, v) {
			return i
		}
		return -1
	}
	for i := len(c.elems) - 1; i >= 0; i-- {
		if d.equal(c.elems[i], v) {
			return i
		}
	}
	return -1
}

// ensure returns the container at path, creating (and recording) the
// missing ones: objects, and for the last step an object or an array.
func ensure(d *doc, r *fileRecord, path []string, last byte) (*node, error) {
	for i := range path {
		wantOpen, kind := byte('{'), "an object"
		if i == len(path)-1 && last == '[' {
			wantOpen, kind = '[', "an array"
		}
		parent, _ := d.at(path[:i])
		if j := parent.find(path[i]); j >= 0 {
			if parent.members[j].val.open != wantOpen {
				return nil, fmt.Errorf("%s: %s is not %s; fix it, or move the file away", r.Path, strings.Join(path[:i+1], "."), kind)
			}
			continue
		}
		var empty any = obj{}
		if wantOpen == '[' {
			empty = []any{}
		}
		if err := d.add(parent, d.multiline(path[:i]), path[i], empty); err != nil {
			return nil, err
		}
		r.addContainer(path[:i+1])
	}
	c, _ := d.at(path)
	return c, nil
}

// Install computes (and with write, applies) the changes: the MCP server
// in ~/.claude.json, the hooks (unless noHooks) and the allow rule in
// ~/.claude/settings.json, and the skill file. It is idempotent, leaves
// alone whatever does the job already (the user's own claudemesh server,
// a hook that runs the command), edits the files in place so every other
// byte stays, and records what it added in p.State for Uninstall. Every
// file is read and checked before any is written.
func Install(p Paths, noHooks, write bool) ([]Change, error) {
	m, err := loadManifest(p.State)
	if err != nil {
		return nil, err
	}
	if err := m.upgradeLegacy(p, noHooks); err != nil {
		return nil, err
	}
	var changes []Change
	var plans []*filePlan
	for _, path := range []string{p.ClaudeJSON, p.Settings} {
		fp, err := planFile(m, path, wanted(path, p, noHooks))
		if err != nil {
			return nil, err
		}
		plans = append(plans, fp)
		changes = append(changes, fp.changes...)
	}
	cs, err := installSkill(m, p.Skill, false)
	if err != nil {
		return nil, err
	}
	changes = append(changes, cs...)
	if !write || !Changed(changes) {
		return changes, nil
	}
	for _, fp := range plans {
		if err = fp.apply(m); err != nil {
			break
		}
	}
	if err == nil {
		_, err = installSkill(m, p.Skill, true)
	}
	// Record what was done even when a later step failed, so uninstall
	// can take it out.
	if serr := saveManifest(p.State, m); err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	return changes, nil
}

// filePlan is install's edit of one JSON file, computed before anything
// is written.
type filePlan struct {
	r          *fileRecord
	orig       []byte
	existed    bool
	d          *doc
	added      []entry
	containers [][]string // the record's containers after the edit
	backup     string     // a backup to make, "" for none
	changes    []Change
}

func planFile(m *manifest, path string, ws []want) (*filePlan, error) {
	orig, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	d, err := parseJSON(orig)
	if err != nil {
		return nil, invalidJSON(path, err)
	}
	if !existed {
		d.src = []byte("{}\n") // Claude Code ends its files with a newline
		if err := d.reparse(); err != nil {
			return nil, err
		}
	}
	r := m.file(path, existed)
	if !existed && !r.fresh {
		// The file install made (or found) is gone: start its record over.
		*r = fileRecord{Path: path, Backup: r.Backup, BackupSHA256: r.BackupSHA256, fresh: true}
	}
	fp := &filePlan{r: r, orig: orig, existed: existed, d: d}
	scratch := &fileRecord{Path: path, Containers: slices.Clone(r.Containers)}
	for _, w := range ws {
		if c, ok := d.at(w.in); ok && c.open == w.container() && w.present(d, c) {
			if w.key != "" && findEntry(d, c, w.key, w.value) < 0 {
				fp.changes = append(fp.changes, Change{File: path, What: "keep the existing " + strings.Join(append(slices.Clone(w.in), w.key), ".") + " (it is not the one install writes)", Note: true})
			}
			continue
		}
		c, err := ensure(d, scratch, w.in, w.container())
		if err != nil {
			return nil, err
		}
		if err := d.add(c, d.multiline(w.in), w.key, w.value); err != nil {
			return nil, err
		}
		fp.added = append(fp.added, w.entry())
		fp.changes = append(fp.changes, Change{File: path, What: w.what})
	}
	fp.containers = scratch.Containers
	if len(fp.added) > 0 && existed && r.Existed && r.Backup == "" {
		fp.backup = freeBackupName(path)
		fp.changes = append(fp.changes, Change{File: path, What: "back up the file as it is now to " + fp.backup + " (kept until uninstall puts those bytes back)"})
	}
	return fp, nil
}

// apply writes the planned file, its backup first, and records it.
func (fp *filePlan) apply(m *manifest) error {
	r := fp.r
	if len(fp.added) == 0 {
		return nil
	}
	if fp.backup != "" {
		if err := writeNew(fp.backup, fp.orig); err != nil {
			return fmt.Errorf("back up %s: %w", r.Path, err)
		}
		r.Backup, r.BackupSHA256 = fp.backup, sum(fp.orig)
	}
	// The exact restore holds only while the file is the original plus
	// install's entries: an edit between two installs ends it.
	if r.fresh || (r.InstalledSHA256 != "" && sum(fp.orig) == r.InstalledSHA256) {
		r.InstalledSHA256 = sum(fp.d.src)
	} else {
		r.InstalledSHA256 = ""
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(r.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	if err := m.mkdirs(filepath.Dir(r.Path)); err != nil {
		return err
	}
	if err := writeAtomic(r.Path, fp.d.src, mode); err != nil {
		return err
	}
	r.Containers, r.Entries, r.fresh = fp.containers, append(r.Entries, fp.added...), false
	return nil
}

// installSkill writes the skill file, or updates the one install wrote.
func installSkill(m *manifest, path string, write bool) ([]Change, error) {
	cur, err := os.ReadFile(path)
	var what string
	switch {
	case errors.Is(err, os.ErrNotExist):
		what = "add the skill file (when and how to use the claudemesh tools)"
	case err != nil:
		return nil, err
	case bytes.Equal(cur, []byte(Skill)):
		return nil, nil
	case m.Skill != nil && m.Skill.Path == path && m.Skill.SHA256 == sum(cur):
		what = "update the skill file to this version's"
	default:
		return []Change{{File: path, What: "keep this skill file: install did not write it, or it was edited since (move it away and run install again for this version's)", Note: true}}, nil
	}
	if write {
		if err := m.mkdirs(filepath.Dir(path)); err != nil {
			return nil, err
		}
		if err := writeAtomic(path, []byte(Skill), 0o644); err != nil {
			return nil, err
		}
		m.Skill = &skillRecord{Path: path, SHA256: sum([]byte(Skill))}
	}
	return []Change{{File: path, What: what}}, nil
}

// mkdirs makes dir and its missing parents (0700), recording each one so
// uninstall can take away the folders install made.
func (m *manifest) mkdirs(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if !slices.Contains(m.Dirs, d) {
			m.Dirs = append(m.Dirs, d)
		}
	}
	return nil
}

// freeBackupName is path's backup name, numbered when a backup from an
// earlier install is still there: a backup is never overwritten.
func freeBackupName(path string) string {
	name := path + backupSuffix
	for i := 2; ; i++ {
		//nolint:gosec // G703: name is a Claude Code settings file beside the user's own, not request input
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			return name
		}
		name = fmt.Sprintf("%s%s.%d", path, backupSuffix, i)
	}
}

// writeNew writes a file that must not exist yet (0600).
func writeNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		_ = f.Close() // the Write error is the one to report
		return err
	}
	return f.Close()
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	t, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(t.Name()) // a no-op after the rename
	if err := t.Chmod(mode); err != nil {
		_ = t.Close() // the Chmod error is the one to report
		return err
	}
	if _, err := t.Write(b); err != nil {
		_ = t.Close() // the Write error is the one to report
		return err
	}
	if err := t.Close(); err != nil {
		return err
	}
	return os.Rename(t.Name(), path)
}
