package claudecode

import (
	"bytes"
	"errors"
	"fmt"
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
// (in its config dir) of the containers install created, so uninstall
// removes those and only those.
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

// Change is one edit, described for a person.
type Change struct {
	File string
	What string
}

// installState lists, per file, the containers install created (dotted
// paths; "" is the file itself).
type installState struct {
	Created map[string][]string `json:"created"`
}

// file is a settings file being edited.
type file struct {
	path     string
	orig     []byte
	existed  bool
	doc      *object
	created  []string
	changes  []Change
	indent   string
	trailing bool
}

func openFile(path string) (*file, error) {
	b, err := os.ReadFile(path)
	f := &file{path: path, orig: b, existed: err == nil, indent: "  ", trailing: true}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if f.existed {
		f.indent, f.trailing = indentOf(b), bytes.HasSuffix(b, []byte("\n"))
	}
	f.doc, err = parseDoc(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (fix it, or move it away)", path, err)
	}
	return f, nil
}

func (f *file) note(format string, args ...any) {
	f.changes = append(f.changes, Change{File: f.path, What: fmt.Sprintf(format, args...)})
}

// child returns o[k] as an object, creating it (and recording that).
func (f *file) child(o *object, path, k string) (*object, error) {
	v, ok := o.get(k)
	if !ok {
		c := newObject()
		o.set(k, c)
		f.created = append(f.created, path)
		return c, nil
	}
	c, ok := v.(*object)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not an object", f.path, path)
	}
	return c, nil
}

// list returns o[k] as an array, creating it (and recording that).
func (f *file) list(o *object, path, k string) ([]any, error) {
	v, ok := o.get(k)
	if !ok {
		o.set(k, []any{})
		f.created = append(f.created, path)
		return []any{}, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not an array", f.path, path)
	}
	return a, nil
}

func (f *file) encoded() []byte { return encodeDoc(f.doc, f.indent, f.trailing) }

// save writes the file if it changed, after a backup of the old one.
func (f *file) save() error {
	b := f.encoded()
	if f.existed && bytes.Equal(b, f.orig) {
		return nil
	}
	mode := os.FileMode(0o600)
	if f.existed {
		if fi, err := os.Stat(f.path); err == nil {
			mode = fi.Mode().Perm()
		}
		if err := os.WriteFile(f.path+backupSuffix, f.orig, 0o600); err != nil {
			return fmt.Errorf("back up %s: %w", f.path, err)
		}
	}
	return writeAtomic(f.path, b, mode)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	t, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(t.Name()) // a no-op after the rename
	if err := t.Chmod(mode); err != nil {
		t.Close()
		return err
	}
	if _, err := t.Write(b); err != nil {
		t.Close()
		return err
	}
	if err := t.Close(); err != nil {
		return err
	}
	return os.Rename(t.Name(), path)
}

// serverEntry is the mcpServers.claudemesh value.
func serverEntry() *object {
	o := newObject()
	o.set("command", str("claudemesh"))
	o.set("args", []any{str("mcp")})
	return o
}

func hookEntry(command string) *object {
	h := newObject()
	h.set("type", str("command"))
	h.set("command", str(command))
	e := newObject()
	e.set("hooks", []any{h})
	return e
}

func sameJSON(a, b any) bool {
	return bytes.Equal(encodeDoc(wrap(a), "", false), encodeDoc(wrap(b), "", false))
}

func wrap(v any) *object { o := newObject(); o.set("v", v); return o }

// hasHookCommand reports whether an event's entries run command already.
func hasHookCommand(entries []any, command string) bool {
	for _, e := range entries {
		eo, ok := e.(*object)
		if !ok {
			continue
		}
		hs, _ := eo.get("hooks")
		list, _ := hs.([]any)
		for _, h := range list {
			if ho, ok := h.(*object); ok {
				if c, _ := ho.get("command"); c != nil {
					if s, ok := stringValue(c); ok && strings.TrimSpace(s) == command {
						return true
					}
				}
			}
		}
	}
	return false
}

func hasString(list []any, s string) bool {
	return slices.ContainsFunc(list, func(v any) bool { x, ok := stringValue(v); return ok && x == s })
}

// Install computes (and with write, applies) the changes: the MCP server
// in ~/.claude.json, the hooks (unless noHooks) and the allow rule in
// ~/.claude/settings.json, and the skill file. It is idempotent: what is
// there already is left alone, including another claudemesh server entry.
func Install(p Paths, noHooks, write bool) ([]Change, error) {
	st, err := loadState(p.State)
	if err != nil {
		return nil, err
	}
	cj, err := openFile(p.ClaudeJSON)
	if err != nil {
		return nil, err
	}
	servers, err := cj.child(cj.doc, "mcpServers", "mcpServers")
	if err != nil {
		return nil, err
	}
	switch cur, ok := servers.get(ServerName); {
	case !ok:
		servers.set(ServerName, serverEntry())
		cj.note(`add mcpServers.claudemesh = {"command": "claudemesh", "args": ["mcp"]}`)
	case !sameJSON(cur, serverEntry()):
		cj.note("keep the existing mcpServers.claudemesh (it is not the one install writes)")
	}

	sf, err := openFile(p.Settings)
	if err != nil {
		return nil, err
	}
	if !noHooks {
		hooks, err := sf.child(sf.doc, "hooks", "hooks")
		if err != nil {
			return nil, err
		}
		for _, he := range hookEvents {
			entries, err := sf.list(hooks, "hooks."+he.event, he.event)
			if err != nil {
				return nil, err
			}
			if !hasHookCommand(entries, he.command) {
				hooks.set(he.event, append(entries, hookEntry(he.command)))
				sf.note("add the %s hook %q", he.event, he.command)
			}
		}
	}
	perms, err := sf.child(sf.doc, "permissions", "permissions")
	if err != nil {
		return nil, err
	}
	allow, err := sf.list(perms, "permissions.allow", "allow")
	if err != nil {
		return nil, err
	}
	if !hasString(allow, AllowRule) {
		perms.set("allow", append(allow, str(AllowRule)))
		sf.note("allow the claudemesh tools: add %q to permissions.allow", AllowRule)
	}

	var changes []Change
	for _, f := range []*file{cj, sf} {
		changes = append(changes, f.changes...)
	}
	skillChange, err := skillWanted(p.Skill)
	if err != nil {
		return nil, err
	}
	if skillChange != "" {
		changes = append(changes, Change{File: p.Skill, What: skillChange})
	}
	if !write {
		return changes, nil
	}
	for _, f := range []*file{cj, sf} {
		if !f.existed {
			f.created = append(f.created, "")
		}
		if bytes.Equal(f.encoded(), f.orig) {
			continue // nothing changed, nothing created
		}
		if err := f.save(); err != nil {
			return nil, err
		}
		st.add(f.path, f.created)
	}
	if skillChange != "" {
		if err := writeAtomic(p.Skill, []byte(Skill), 0o644); err != nil {
			return nil, err
		}
	}
	return changes, saveState(p.State, st)
}
