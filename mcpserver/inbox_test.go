package mcpserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
	"github.com/claudemesh/claudemesh-go/peer"
	"github.com/claudemesh/claudemesh-go/wsproto"
)

// push seals text from from to to and opens it as to would.
func push(t *testing.T, from, to meshcrypto.Identity, id, text, prio string) peer.Direct {
	return pushOpenedBy(t, from, to, to, id, text, prio)
}

func pushOpenedBy(t *testing.T, from, to, reader meshcrypto.Identity, id, text, prio string) peer.Direct {
	t.Helper()
	ct, nonce, err := meshcrypto.SealDirect([]byte(text), from, to.PublicKeyHex())
	if err != nil {
		t.Fatal(err)
	}
	return peer.OpenPush(wsproto.Push{Type: wsproto.TypePush, ID: id, From: wsproto.MemberRef{ID: "m-alice", DisplayName: "alice", Pubkey: from.PublicKeyHex()},
		Priority: prio, Nonce: nonce, Ciphertext: ct, CreatedAt: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}, reader)
}

// TestInbox: a push is kept (0600) until taken, survives a reopen, is not
// kept twice, and once taken a re-push of it is recognised as reported.
func TestInbox(t *testing.T) {
	alice, _ := meshcrypto.GenerateIdentity()
	bob, _ := meshcrypto.GenerateIdentity()
	path := filepath.Join(t.TempDir(), "spool", "mesh-cc-1.json")
	ib, err := openInbox(path)
	if err != nil {
		t.Fatal(err)
	}
	m, fresh, done, err := ib.add(push(t, alice, bob, "id-1", "hello bob", "now"))
	if err != nil || !fresh || done || m.Text != "hello bob" || m.FromName != "alice" {
		t.Fatalf("add: %+v %v %v %v", m, fresh, done, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("spool file: %v %v", fi, err)
	}
	if _, fresh, done, _ := ib.add(push(t, alice, bob, "id-1", "hello bob", "now")); fresh || done {
		t.Fatal("a re-push of a pending message was kept twice")
	}

	ib, err = openInbox(path) // a restart
	if err != nil {
		t.Fatal(err)
	}
	got, err := ib.take(nil)
	if err != nil || len(got) != 1 || got[0].ID != "id-1" {
		t.Fatalf("take after reopen: %+v %v", got, err)
	}
	if again, _ := ib.take(nil); len(again) != 0 {
		t.Fatalf("taken twice: %+v", again)
	}
	ib, _ = openInbox(path)
	if _, fresh, done, _ := ib.add(push(t, alice, bob, "id-1", "hello bob", "now")); fresh || !done {
		t.Fatal("a re-push of a reported message is not recognised")
	}
	if r := ib.reported(); len(r) != 1 || r[0] != "id-1" {
		t.Fatalf("reported %v", r)
	}

	// A message not for us is kept, marked undecryptable.
	carol, _ := meshcrypto.GenerateIdentity()
	m, _, _, _ = ib.add(pushOpenedBy(t, alice, carol, bob, "id-2", "for carol", "next"))
	if !m.Undecryptable || !strings.Contains(describe(m), "could not be decrypted") {
		t.Fatalf("undecryptable: %+v", m)
	}
}

// TestChannelParams: content reads like "[URGENT] alice: …"; meta is
// strings only and leaves empty fields out.
func TestChannelParams(t *testing.T) {
	p := channelParams(Message{ID: "id-1", FromID: "m-alice", FromName: "alice", FromPubkey: "ab", Priority: "now", Text: "deploy is red"}, "team")
	if p.Content != "[URGENT] alice: deploy is red" {
		t.Fatalf("content %q", p.Content)
	}
	want := map[string]string{"from_id": "m-alice", "from_name": "alice", "from_pubkey": "ab", "mesh_slug": "team", "priority": "now", "message_id": "id-1"}
	if len(p.Meta) != len(want) {
		t.Fatalf("meta %v", p.Meta)
	}
	for k, v := range want {
		if p.Meta[k] != v {
			t.Fatalf("meta %v", p.Meta)
		}
	}
	if c := channelParams(Message{FromName: "bob", Priority: "low", Text: "fyi"}, "team").Content; c != "[low] bob: fyi" {
		t.Fatalf("low: %q", c)
	}
}
