package claudecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Uninstall computes (and with write, applies) the removal of exactly
// what Install adds: the claudemesh server entry (when it is still the one
// install writes), the two hook entries install adds, the allow rule, the
// skill file (when unchanged), and the containers install created and that
// are empty again. Everything else in the files is written back as it was.
func Uninstall(p Paths, write bool) ([]Change, error) {
	st, err := loadState(p.State)
	if err != nil {
		return nil, err
	}
	var changes []Change
	for _, path := range []string{p.ClaudeJSON, p.Settings} {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		if !f.existed {
			continue
		}
		if servers, ok := objectAt(f.doc, "mcpServers"); ok {
			if cur, ok := servers.get(ServerName); ok && sameJSON(cur, serverEntry()) {
				servers.del(ServerName)
				f.note("remove mcpServers.claudemesh")
			}
		}
		if hooks, ok := objectAt(f.doc, "hooks"); ok {
			for _, he := range hookEvents {
				v, _ := hooks.get(he.event)
				entries, ok := v.([]any)
				if !ok {
					continue
				}
				kept := slices.DeleteFunc(slices.Clone(entries), func(e any) bool { return sameJSON(e, hookEntry(he.command)) })
				if len(kept) != len(entries) {
					hooks.set(he.event, kept)
					f.note("remove the %s hook %q", he.event, he.command)
				}
			}
		}
		if perms, ok := objectAt(f.doc, "permissions"); ok {
			v, _ := perms.get("allow")
			if allow, ok := v.([]any); ok && hasString(allow, AllowRule) {
				perms.set("allow", slices.DeleteFunc(slices.Clone(allow), func(x any) bool { s, _ := stringValue(x); return s == AllowRule }))
				f.note("remove %q from permissions.allow", AllowRule)
			}
		}
		// Containers install created go when empty again, deepest first.
		created := slices.Clone(st.Created[path])
		sort.Slice(created, func(i, j int) bool { return strings.Count(created[i], ".") > strings.Count(created[j], ".") })
		removeFile := false
		for _, c := range created {
			if c == "" {
				removeFile = len(f.doc.keys) == 0
				continue
			}
			parent, key := f.doc, c
			if i := strings.LastIndex(c, "."); i >= 0 {
				var ok bool
				if parent, ok = objectAt(f.doc, c[:i]); !ok {
					continue
				}
				key = c[i+1:]
			}
			if v, ok := parent.get(key); ok && isEmpty(v) {
				parent.del(key)
			}
		}
		changes = append(changes, f.changes...)
		if !write || len(f.changes) == 0 {
			continue
		}
		if removeFile {
			if err := os.WriteFile(path+backupSuffix, f.orig, 0o600); err != nil {
				return nil, err
			}
			if err := os.Remove(path); err != nil {
				return nil, err
			}
			continue
		}
		if err := f.save(); err != nil {
			return nil, err
		}
	}
	if b, err := os.ReadFile(p.Skill); err == nil {
		if string(b) == Skill {
			changes = append(changes, Change{File: p.Skill, What: "remove the skill file"})
			if write {
				if err := os.Remove(p.Skill); err != nil {
					return nil, err
				}
				_ = os.Remove(filepath.Dir(p.Skill)) // only if empty
			}
		} else {
			changes = append(changes, Change{File: p.Skill, What: "keep the skill file: it was edited since install wrote it"})
		}
	}
	if write {
		if err := os.Remove(p.State); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return changes, nil
}

// objectAt follows a dotted path of objects.
func objectAt(o *object, path string) (*object, bool) {
	for _, k := range strings.Split(path, ".") {
		v, ok := o.get(k)
		if !ok {
			return nil, false
		}
		if o, ok = v.(*object); !ok {
			return nil, false
		}
	}
	return o, true
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case *object:
		return len(x.keys) == 0
	case []any:
		return len(x) == 0
	}
	return false
}

func loadState(path string) (*installState, error) {
	st := &installState{Created: map[string][]string{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.Created == nil {
		st.Created = map[string][]string{}
	}
	return st, nil
}

func (st *installState) add(path string, created []string) {
	for _, c := range created {
		if !slices.Contains(st.Created[path], c) {
			st.Created[path] = append(st.Created[path], c)
		}
	}
}

func saveState(path string, st *installState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

// skillWanted says what writing the skill file would do ("" = nothing).
func skillWanted(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "add the skill file (when and how to use the claudemesh tools)", nil
	case err != nil:
		return "", err
	case !bytes.Equal(b, []byte(Skill)):
		return "update the skill file to this version's", nil
	}
	return "", nil
}
