package claudecode

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// doc is a JSON document edited in place: every change is a splice of its
// source bytes, so whatever install does not touch (formatting, key order,
// \u escapes, compact objects) stays byte for byte. Added text follows the
// style of the container it goes into. An append and the removal of the
// same last child are exact inverses, which is what lets uninstall hand
// back the bytes install found.
type doc struct {
	src  []byte
	root *node
	unit string // the file's indentation unit, for multi-line additions
}

// node is a JSON value and where it sits in the source.
type node struct {
	open       byte // '{', '[', or 0 for a scalar
	start, end int  // src[start:end] is the value
	members    []member
	elems      []*node
}

type member struct {
	key              string
	keyStart, keyEnd int
	val              *node
}

// kv and obj build values in key order for insertion.
type kv struct {
	k string
	v any
}
type obj []kv

// parseJSON reads a document whose top level is an object; empty input
// is an empty object.
func parseJSON(src []byte) (*doc, error) {
	d := &doc{src: src, unit: indentOf(src)}
	if len(bytes.TrimSpace(src)) == 0 {
		d.src = []byte("{}")
	}
	if err := d.reparse(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *doc) reparse() error {
	if !json.Valid(d.src) {
		var v any
		err := json.Unmarshal(d.src, &v)
		if err == nil {
			err = errors.New("invalid JSON")
		}
		return err
	}
	p := &scanner{src: d.src}
	p.ws()
	root := p.value()
	if root.open != '{' {
		return errors.New("the top level is not a JSON object")
	}
	d.root = root
	return nil
}

// scanner walks JSON already checked by json.Valid.
type scanner struct {
	src []byte
	i   int
}

func (p *scanner) ws() {
	for p.i < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.i]) >= 0 {
		p.i++
	}
}

func (p *scanner) value() *node {
	n := &node{start: p.i}
	switch c := p.src[p.i]; c {
	case '{':
		n.open = c
		p.i++
		for p.ws(); p.src[p.i] != '}'; p.ws() {
			if p.src[p.i] == ',' {
				p.i++
				p.ws()
			}
			m := member{keyStart: p.i}
			p.str()
			m.keyEnd = p.i
			_ = json.Unmarshal(p.src[m.keyStart:m.keyEnd], &m.key)
			p.ws()
			p.i++ // ':'
			p.ws()
			m.val = p.value()
			n.members = append(n.members, m)
		}
		p.i++
	case '[':
		n.open = c
		p.i++
		for p.ws(); p.src[p.i] != ']'; p.ws() {
			if p.src[p.i] == ',' {
				p.i++
				p.ws()
			}
			n.elems = append(n.elems, p.value())
		}
		p.i++
	case '"':
		p.str()
	default:
		for p.i < len(p.src) && strings.IndexByte(",]} \t\r\n", p.src[p.i]) < 0 {
			p.i++
		}
	}
	n.end = p.i
	return n
}

func (p *scanner) str() {
	for p.i++; p.src[p.i] != '"'; p.i++ {
		if p.src[p.i] == '\\' {
			p.i++
		}
	}
	p.i++
}

// at follows a path of object keys from the root.
func (d *doc) at(path []string) (*node, bool) {
	n := d.root
	for _, k := range path {
		i := n.find(k)
		if i < 0 {
			return nil, false
		}
		n = n.members[i].val
	}
	return n, true
}

// find is the index of the last member called k (the one JSON parsers use).
func (n *node) find(k string) int {
	for i := len(n.members) - 1; i >= 0; i-- {
		if n.members[i].key == k {
			return i
		}
	}
	return -1
}

func (n *node) children() int { return len(n.members) + len(n.elems) }

func (n *node) childStart(i int) int {
	if n.open == '{' {
		return n.members[i].keyStart
	}
	return n.elems[i].start
}

func (n *node) childEnd(i int) int {
	if n.open == '{' {
		return n.members[i].val.end
	}
	return n.elems[i].end
}

// equal reports whether src[n] means the same JSON as v.
func (d *doc) equal(n *node, v any) bool {
	var a, b any
	if json.Unmarshal(d.src[n.start:n.end], &a) != nil {
		return false
	}
	if json.Unmarshal([]byte(render(v, style{colon: ":", comma: ","})), &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

func (d *doc) splice(start, end int, text string) error {
	b := make([]byte, 0, len(d.src)-(end-start)+len(text))
	b = append(append(append(b, d.src[:start]...), text...), d.src[end:]...)
	d.src = b
	return d.reparse()
}

// add puts a member (key != "" for an object) or an element at the end of
// container c, whose ancestors' multi-line-ness is inherited.
func (d *doc) add(c *node, multiline bool, key string, v any) error {
	item := func(s style) string {
		if c.open == '{' {
			return string(encodeString(key)) + s.colon + render(v, s)
		}
		return render(v, s)
	}
	n := c.children()
	if n == 0 {
		if !multiline {
			colon, comma := d.colon(), ","
			if strings.HasSuffix(colon, " ") {
				comma = ", "
			}
			return d.splice(c.start+1, c.end-1, item(style{colon: colon, comma: comma}))
		}
		base := d.lineIndent(c.start)
		s := style{colon: d.colon(), comma: ",", unit: d.unit, indent: base + d.unit}
		return d.splice(c.start+1, c.end-1, "\n"+s.indent+item(s)+"\n"+base)
	}
	// Separate the new child as the last one is separated from its
	// predecessor, else as the first one is set off from the bracket.
	sep := "," + string(d.src[c.start+1:c.childStart(0)])
	if n >= 2 {
		sep = string(d.src[c.childEnd(n-2):c.childStart(n-1)])
	}
	colon := d.colon()
	if c.open == '{' {
		m := c.members[n-1]
		colon = string(d.src[m.keyEnd:m.val.start])
	}
	s := style{colon: colon, comma: strings.TrimRight(sep, "\r\n\t ")}
	if i := strings.LastIndexByte(sep, '\n'); i >= 0 {
		s.unit, s.indent = d.unit, sep[i+1:]
	} else {
		if n == 1 && sep == "," && strings.HasSuffix(colon, " ") {
			sep = ", " // {"a": 1} reads as one space after each comma
		}
		s.comma = sep
	}
	return d.splice(c.childEnd(n-1), c.childEnd(n-1), sep+item(s))
}

// remove takes child i out of container c, with the separator add put
// before it (or, for the first of several, the one after it).
func (d *doc) remove(c *node, i int) error {
	switch n := c.children(); {
	case n == 1:
		return d.splice(c.start+1, c.end-1, "")
	case i > 0:
		return d.splice(c.childEnd(i-1), c.childEnd(i), "")
	default:
		return d.splice(c.childStart(0), c.childStart(1), "")
	}
}

// multiline reports whether the container at path is laid out one child
// per line; an empty one takes after its parent, the root after the file.
func (d *doc) multiline(path []string) bool {
	ml := len(d.root.members) == 0 || bytes.ContainsRune(d.src[d.root.start:d.root.childStart(0)], '\n')
	n := d.root
	for _, k := range path {
		i := n.find(k)
		if i < 0 {
			break
		}
		n = n.members[i].val
		if n.children() > 0 {
			ml = bytes.ContainsRune(d.src[n.start:n.childStart(0)], '\n')
		}
	}
	return ml
}

// colon is how the file writes a key's colon (its first one), ": " when
// it has none.
func (d *doc) colon() string {
	var walk func(*node) (string, bool)
	walk = func(n *node) (string, bool) {
		for _, m := range n.members {
			return string(d.src[m.keyEnd:m.val.start]), true
		}
		for _, e := range n.elems {
			if c, ok := walk(e); ok {
				return c, true
			}
		}
		return "", false
	}
	if c, ok := walk(d.root); ok {
		return c
	}
	return ": "
}

// lineIndent is the leading white space of the line holding offset i.
func (d *doc) lineIndent(i int) string {
	start := bytes.LastIndexByte(d.src[:i], '\n') + 1
	end := start
	for end < len(d.src) && (d.src[end] == ' ' || d.src[end] == '\t') {
		end++
	}
	return string(d.src[start:end])
}

// style is how rendered JSON is laid out: unit == "" is on one line.
type style struct {
	colon, comma string
	unit, indent string
}

// render writes v (obj, []any, string or json.RawMessage) in style s; a
// multi-line value starts at s.indent.
func render(v any, s style) string {
	var b strings.Builder
	var write func(v any, indent string)
	open := func(c byte, indent string, n int, each func(i int, indent string)) {
		b.WriteByte(c)
		if n > 0 {
			inner := indent + s.unit
			for i := range n {
				if i > 0 {
					b.WriteString(s.comma)
				}
				if s.unit != "" {
					b.WriteString("\n" + inner)
				}
				each(i, inner)
			}
			if s.unit != "" {
				b.WriteString("\n" + indent)
			}
		}
		b.WriteByte(c + 2) // '{'+2 is '}', '['+2 is ']'
	}
	write = func(v any, indent string) {
		switch x := v.(type) {
		case obj:
			open('{', indent, len(x), func(i int, inner string) {
				b.Write(encodeString(x[i].k))
				b.WriteString(s.colon)
				write(x[i].v, inner)
			})
		case []any:
			open('[', indent, len(x), func(i int, inner string) { write(x[i], inner) })
		case string:
			b.Write(encodeString(x))
		case json.RawMessage:
			b.Write(x)
		default:
			panic(fmt.Sprintf("render: unexpected %T", v))
		}
	}
	write(v, s.indent)
	return b.String()
}

// encodeString encodes a string as JSON.stringify does (no HTML escaping).
func encodeString(s string) []byte {
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
