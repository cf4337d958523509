package claudecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// object is a JSON object that keeps its keys in file order. Scalars are
// kept as their raw bytes, so a string or number is written back exactly
// as it was read. Together with the file's own indentation this makes an
// untouched part of a settings file come back byte for byte.
type object struct {
	keys []string
	vals map[string]any // *object, []any, or json.RawMessage
}

func newObject() *object { return &object{vals: map[string]any{}} }

func (o *object) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

func (o *object) set(k string, v any) {
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

func (o *object) del(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, x := range o.keys {
		if x == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// parseDoc reads a JSON document whose top level is an object.
func parseDoc(b []byte) (*object, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return newObject(), nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	v, err := parseValue(d)
	if err != nil {
		return nil, err
	}
	o, ok := v.(*object)
	if !ok {
		return nil, errors.New("the top level is not a JSON object")
	}
	return o, nil
}

func parseValue(d *json.Decoder) (any, error) {
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		o := newObject()
		for d.More() {
			kt, err := d.Token()
			if err != nil {
				return nil, err
			}
			k, _ := kt.(string)
			v, err := parseValue(d)
			if err != nil {
				return nil, err
			}
			o.set(k, v)
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for d.More() {
			v, err := parseValue(d)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := d.Token()
		return a, err
	}
	if s, ok := t.(string); ok {
		return encodeString(s), nil
	}
	b, err := json.Marshal(t) // a json.Number keeps its literal; true, false, null
	return json.RawMessage(b), err
}

// encodeString encodes a string as JSON.stringify does (no HTML escaping).
func encodeString(s string) json.RawMessage {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s)
	return bytes.TrimRight(b.Bytes(), "\n")
}

// indentOf guesses a file's indentation unit (two spaces when unknown:
// Claude Code writes JSON.stringify(settings, null, 2)).
func indentOf(b []byte) string {
	for _, line := range strings.Split(string(b), "\n")[1:] {
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed != "" && len(trimmed) < len(line) {
			return line[:len(line)-len(trimmed)]
		}
	}
	return "  "
}

// encodeDoc writes o as JSON.stringify(o, null, indent) does.
func encodeDoc(o *object, indent string, trailingNewline bool) []byte {
	var b bytes.Buffer
	writeValue(&b, o, indent, 0)
	if trailingNewline {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func writeValue(b *bytes.Buffer, v any, indent string, depth int) {
	pad := func(n int) { b.WriteString(strings.Repeat(indent, n)) }
	switch x := v.(type) {
	case *object:
		if len(x.keys) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		for i, k := range x.keys {
			pad(depth + 1)
			b.Write(encodeString(k))
			b.WriteString(": ")
			writeValue(b, x.vals[k], indent, depth+1)
			if i < len(x.keys)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		pad(depth)
		b.WriteByte('}')
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, e := range x {
			pad(depth + 1)
			writeValue(b, e, indent, depth+1)
			if i < len(x)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		pad(depth)
		b.WriteByte(']')
	case json.RawMessage:
		b.Write(x)
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", v))
	}
}

// str is a JSON string value.
func str(s string) json.RawMessage { return encodeString(s) }

// stringValue reads a string value (ok false for anything else).
func stringValue(v any) (string, bool) {
	raw, ok := v.(json.RawMessage)
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}
