package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// NULField returns the JSON path (e.g. "envelopes[1].nonce") of the first
// string or object key in a JSON document that holds U+0000. PostgreSQL text
// cannot store NUL and SQLite would store it, so it is refused up front for
// every body on both databases. Documents without the escape are passed by
// one byte scan; raw control bytes are already invalid JSON.
func NULField(raw []byte) (string, bool) {
	if !bytes.Contains(raw, []byte(`\u0000`)) {
		return "", false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", false // malformed: the caller's decode reports it
	}
	return findNUL(v, "")
}

func findNUL(v any, path string) (string, bool) {
	switch t := v.(type) {
	case string:
		if bytes.IndexByte([]byte(t), 0) >= 0 {
			return orRoot(path), true
		}
	case []any:
		for i, e := range t {
			if p, ok := findNUL(e, path+"["+strconv.Itoa(i)+"]"); ok {
				return p, true
			}
		}
	case map[string]any:
		for k, e := range t {
			child := k
			if path != "" {
				child = path + "." + k
			}
			if bytes.IndexByte([]byte(k), 0) >= 0 {
				return orRoot(path), true
			}
			if p, ok := findNUL(e, child); ok {
				return p, true
			}
		}
	}
	return "", false
}

func orRoot(path string) string {
	if path == "" {
		return "(body)"
	}
	return path
}

// NULFieldError is the field error for a NUL found by NULField.
func NULFieldError(field string) *Error {
	return Invalid(FieldError{field, "must not contain the NUL character (U+0000)"})
}

// checkLabel validates a single-line name that people read (a user's or a
// mesh's name, a key's label): minRunes to maxRunes characters, no control
// characters and no bidirectional overrides, which could make one name pose
// as another on screen.
func checkLabel(field, v string, minRunes, maxRunes int) *FieldError {
	return checkText(field, v, minRunes, maxRunes, false)
}

// checkText is checkLabel for text that may span lines (descriptions,
// summaries): tab and newline are allowed there.
func checkText(field, v string, minRunes, maxRunes int, multiline bool) *FieldError {
	n := utf8.RuneCountInString(v)
	if !utf8.ValidString(v) || n < minRunes || n > maxRunes {
		if minRunes > 0 {
			return &FieldError{field, fmt.Sprintf("must be %d to %d characters", minRunes, maxRunes)}
		}
		return &FieldError{field, fmt.Sprintf("must be at most %d characters", maxRunes)}
	}
	for _, r := range v {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || isBidiControl(r) {
			what := "control characters"
			if multiline {
				what = "control characters other than tab and newline"
			}
			return &FieldError{field, "must not contain " + what + " or bidirectional overrides"}
		}
	}
	return nil
}

func isBidiControl(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C
}
