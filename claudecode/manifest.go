package claudecode

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// manifest is claudemesh's record (in its own config dir) of what install
// put into Claude Code's files. Uninstall takes out what it lists and
// nothing else: an entry the user wrote, even one identical to install's,
// is not in it.
type manifest struct {
	Version int           `json:"version"`
	Files   []*fileRecord `json:"files,omitempty"`
	Skill   *skillRecord  `json:"skill,omitempty"`
	// Dirs are the folders install made, parents first.
	Dirs []string `json:"dirs,omitempty"`

	// Created is the version 1 record (containers only, per file).
	Created map[string][]string `json:"created,omitempty"`
}

const manifestVersion = 2

// fileRecord is what install did to one JSON file.
type fileRecord struct {
	Path string `json:"path"`
	// Existed is false when install created the file.
	Existed bool `json:"existed"`
	// Backup holds the file's bytes from before the first install; it is
	// never overwritten.
	Backup       string `json:"backup,omitempty"`
	BackupSHA256 string `json:"backupSha256,omitempty"`
	// InstalledSHA256 is the file as install left it, when it was the
	// original plus install's entries and nothing else: if the file is
	// still that, uninstall gives back the original bytes exactly.
	InstalledSHA256 string `json:"installedSha256,omitempty"`
	// Containers are the objects and arrays install created (key paths),
	// parents first; uninstall removes them when they are empty again.
	Containers [][]string `json:"containers,omitempty"`
	Entries    []entry    `json:"entries,omitempty"`
	fresh      bool       // made by this run
}

// entry is one member or element install added to the container at In.
type entry struct {
	In    []string        `json:"in"`
	Key   string          `json:"key,omitempty"` // an object member's key
	Value json.RawMessage `json:"value"`
}

type skillRecord struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

func loadManifest(path string) (*manifest, error) {
	m := &manifest{Version: manifestVersion}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("install record %s is not valid JSON: %w; fix or remove it", path, err)
	}
	return m, nil
}

func saveManifest(path string, m *manifest) error {
	m.Version, m.Created = manifestVersion, nil
	m.Files = slices.DeleteFunc(m.Files, func(r *fileRecord) bool {
		return len(r.Entries) == 0 && len(r.Containers) == 0 && r.Backup == "" // nothing done to it
	})
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

// file returns the record for path, making a fresh one.
func (m *manifest) file(path string, existed bool) *fileRecord {
	for _, r := range m.Files {
		if r.Path == path {
			return r
		}
	}
	r := &fileRecord{Path: path, Existed: existed, fresh: true}
	m.Files = append(m.Files, r)
	return r
}

func (r *fileRecord) addContainer(path []string) {
	if !slices.ContainsFunc(r.Containers, func(c []string) bool { return slices.Equal(c, path) }) {
		r.Containers = append(r.Containers, slices.Clone(path))
	}
}

// upgradeLegacy turns a version 1 record, which listed only the containers
// install created, into entries: every entry identical to install's in a
// file install changed is taken as install's (what version 1 did).
func (m *manifest) upgradeLegacy(p Paths, noHooks bool) error {
	if m.Created == nil {
		return nil
	}
	for path, created := range m.Created {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		d, err := parseJSON(b)
		if err != nil {
			return invalidJSON(path, err)
		}
		r := m.file(path, !slices.Contains(created, ""))
		r.fresh = false
		for _, c := range created {
			if c != "" {
				r.addContainer(strings.Split(c, "."))
			}
		}
		for _, w := range wanted(path, p, noHooks) {
			if c, ok := d.at(w.in); ok && findEntry(d, c, w.key, w.value) >= 0 {
				r.Entries = append(r.Entries, w.entry())
			}
		}
	}
	if b, err := os.ReadFile(p.Skill); err == nil && string(b) == Skill {
		m.Skill = &skillRecord{Path: p.Skill, SHA256: sum(b)}
	}
	m.Created = nil
	return nil
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func invalidJSON(path string, err error) error {
	return fmt.Errorf("%s is not valid JSON: %w; fix it, or move it away", path, err)
}
