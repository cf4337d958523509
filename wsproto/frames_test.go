package wsproto_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/claudemesh/claudemesh-go/wsproto"
)

// jsonFields maps a struct's JSON names to their Go types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = f.Type
	}
	return out
}

// The broker decodes every client frame into ClientFrame (strictly:
// unknown fields are refused), so a field a client struct sends and
// ClientFrame lacks would be refused on the wire.
func TestClientFrameCoversEveryClientFrame(t *testing.T) {
	union := jsonFields(reflect.TypeFor[wsproto.ClientFrame]())
	seen := map[string]bool{}
	for _, v := range []any{wsproto.Hello{}, wsproto.Send{}, wsproto.AckPushes{}, wsproto.SetStatus{}, wsproto.ListPeers{},
		wsproto.MessageStatusQuery{}, wsproto.Subscribe{}, wsproto.Unsubscribe{}} {
		typ := reflect.TypeOf(v)
		for name, ft := range jsonFields(typ) {
			seen[name] = true
			ut, ok := union[name]
			if !ok {
				t.Errorf("%s.%s: ClientFrame has no field %q", typ.Name(), name, name)
				continue
			}
			if ut != ft {
				t.Errorf("%s.%s is %s, ClientFrame's is %s", typ.Name(), name, ft, ut)
			}
		}
	}
	for name := range union {
		if !seen[name] {
			t.Errorf("ClientFrame.%s is in no client frame", name)
		}
	}
}
