package claudecode

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Uninstall computes (and with write, applies) the removal of what Install
// recorded, and nothing else: the entries it added, the containers and
// files it created once they are empty again, the skill file if unchanged,
// the folders it made if empty. A file nobody touched since install gets
// its original bytes back exactly; an edited one keeps every byte but
// install's entries. Without a record nothing is removed.
func Uninstall(p Paths, write bool) ([]Change, error) {
	m, err := loadManifest(p.State)
	if err != nil {
		return nil, err
	}
	if err := m.upgradeLegacy(p, false); err != nil {
		return nil, err
	}
	if len(m.Files) == 0 && m.Skill == nil && len(m.Dirs) == 0 {
		return unrecorded(p)
	}
	var changes []Change
	gone := map[string]bool{} // paths that are (or would be) removed
	for _, r := range m.Files {
		cs, err := uninstallFile(r, write, gone)
		if err != nil {
			return nil, err
		}
		changes = append(changes, cs...)
	}
	if s := m.Skill; s != nil {
		b, err := os.ReadFile(s.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, err
		case sum(b) != s.SHA256:
			changes = append(changes, Change{File: s.Path, What: "keep the skill file: it was edited since install wrote it", Note: true})
		default:
			changes = append(changes, Change{File: s.Path, What: "remove the skill file"})
			gone[s.Path] = true
			if write {
				if err := os.Remove(s.Path); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, dir := range slices.Backward(m.Dirs) {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(entries, func(e os.DirEntry) bool { return !gone[filepath.Join(dir, e.Name())] }) {
			changes = append(changes, Change{File: dir, What: "keep this folder install made: other files are in it now", Note: true})
			continue
		}
		changes = append(changes, Change{File: dir, What: "remove this folder (install made it, and it is empty then)"})
		gone[dir] = true
		if write {
			if err := os.Remove(dir); err != nil {
				return nil, err
			}
		}
	}
	if write {
		if err := os.Remove(p.State); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return changes, nil
}

func uninstallFile(r *fileRecord, write bool, gone map[string]bool) ([]Change, error) {
	cur, err := os.ReadFile(r.Path)
	if errors.Is(err, os.ErrNotExist) {
		return []Change{{File: r.Path, What: "the file is gone already: nothing to take out", Note: true}}, nil
	}
	if err != nil {
		return nil, err
	}
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(r.Path); err == nil {
		mode = fi.Mode().Perm()
	}
	one := func(what string) []Change { return []Change{{File: r.Path, What: what}} }

	// Untouched since install: give back the bytes from before it exactly.
	if r.InstalledSHA256 != "" && sum(cur) == r.InstalledSHA256 {
		if !r.Existed {
			gone[r.Path] = true
			if write {
				if err := os.Remove(r.Path); err != nil {
					return nil, err
				}
			}
			return one("remove the file (install created it, and it is unchanged since)"), nil
		}
		if b, err := os.ReadFile(r.Backup); err == nil && sum(b) == r.BackupSHA256 {
			gone[r.Backup] = true
			if write {
				if err := writeAtomic(r.Path, b, mode); err != nil {
					return nil, err
				}
				if err := os.Remove(r.Backup); err != nil {
					return nil, err
				}
			}
			return one("put back the bytes from before install (from " + r.Backup + ", which then goes)"), nil
		}
	}

	// Edited since: take out install's entries one by one.
	d, err := parseJSON(cur)
	if err != nil {
		return nil, invalidJSON(r.Path, err)
	}
	var changes []Change
	for _, e := range slices.Backward(r.Entries) {
		i := -1
		c, ok := d.at(e.In)
		if ok {
			i = findEntry(d, c, e.Key, e.Value)
		}
		if i < 0 {
			changes = append(changes, Change{File: r.Path, What: "already gone: " + e.describe(), Note: true})
			continue
		}
		if err := d.remove(c, i); err != nil {
			return nil, err
		}
		changes = append(changes, Change{File: r.Path, What: "remove " + e.describe()})
	}
	for _, path := range slices.Backward(r.Containers) {
		parent, ok := d.at(path[:len(path)-1])
		if !ok {
			continue
		}
		if i := parent.find(path[len(path)-1]); i >= 0 {
			if v := parent.members[i].val; v.open != 0 && v.children() == 0 {
				if err := d.remove(parent, i); err != nil {
					return nil, err
				}
				changes = append(changes, Change{File: r.Path, What: "remove the empty " + strings.Join(path, ".") + " install created"})
			}
		}
	}
	if !r.Existed && d.root.children() == 0 {
		gone[r.Path] = true
		if write {
			if err := os.Remove(r.Path); err != nil {
				return nil, err
			}
		}
		return append(changes, Change{File: r.Path, What: "remove the file (install created it, and it is empty now)"}), nil
	}
	if r.Backup != "" {
		changes = append(changes, Change{File: r.Path, What: "the file as it was before install stays at " + r.Backup + " (it was edited since install, so that copy is not put back)", Note: true})
	}
	if write && Changed(changes) {
		if err := writeAtomic(r.Path, d.src, mode); err != nil {
			return nil, err
		}
	}
	return changes, nil
}

// describe names an entry for a person.
func (e entry) describe() string {
	in := strings.Join(e.In, ".")
	if e.Key != "" {
		return in + "." + e.Key
	}
	var s string
	if json.Unmarshal(e.Value, &s) == nil {
		return fmt.Sprintf("%q from %s", s, in)
	}
	var h struct {
		Hooks []struct{ Command string } `json:"hooks"`
	}
	if len(e.In) == 2 && e.In[0] == "hooks" && json.Unmarshal(e.Value, &h) == nil && len(h.Hooks) == 1 {
		return fmt.Sprintf("the %s hook %q", e.In[1], h.Hooks[0].Command)
	}
	return fmt.Sprintf("%s from %s", e.Value, in)
}

// unrecorded is uninstall without an install record: it removes nothing,
// and names what looks like install's work so the user can decide.
func unrecorded(p Paths) ([]Change, error) {
	var changes []Change
	for _, path := range []string{p.ClaudeJSON, p.Settings} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		d, err := parseJSON(b)
		if err != nil {
			return nil, invalidJSON(path, err)
		}
		for _, w := range wanted(path, p, false) {
			if c, ok := d.at(w.in); ok && findEntry(d, c, w.key, w.value) >= 0 {
				changes = append(changes, Change{File: path, What: "leave " + w.entry().describe() + ": install has no record of adding it", Note: true})
			}
		}
	}
	return changes, nil
}
