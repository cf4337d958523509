package meshcrypto

import (
	"errors"
	"testing"
)

// TestKeyRingAfterRotation: a member removed after epoch 1 keeps opening
// epoch-1 messages, and neither its ring nor the epoch-1 key opens an
// epoch-2 message; a member who stayed opens both.
func TestKeyRingAfterRotation(t *testing.T) {
	k1, err := NewTopicKey()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := NewTopicKey()
	if err != nil {
		t.Fatal(err)
	}
	stayed, removed := NewKeyRing(), NewKeyRing()
	stayed.Add(1, k1)
	stayed.Add(2, k2)
	removed.Add(1, k1)

	oldCT, oldNonce, err := stayed.Encrypt(1, []byte("before"))
	if err != nil {
		t.Fatal(err)
	}
	newCT, newNonce, err := stayed.Encrypt(2, []byte("after"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := removed.Decrypt(1, oldCT, oldNonce); err != nil || string(got) != "before" {
		t.Fatalf("removed member, old message: %q %v", got, err)
	}
	if _, err := removed.Decrypt(2, newCT, newNonce); !errors.Is(err, ErrNoEpochKey) {
		t.Fatalf("removed member, new message by epoch: %v", err)
	}
	if _, err := removed.Decrypt(1, newCT, newNonce); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("removed member, new message with the old key: %v", err)
	}
	for epoch, ct := range map[int][2]string{1: {oldCT, oldNonce}, 2: {newCT, newNonce}} {
		if _, err := stayed.Decrypt(epoch, ct[0], ct[1]); err != nil {
			t.Fatalf("member who stayed, epoch %d: %v", epoch, err)
		}
	}
}

func TestKeyRingAddSealed(t *testing.T) {
	alice, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	bob, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := NewTopicKey()
	ek, n, err := SealTopicKey(k, alice, bob.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	r := NewKeyRing()
	if err := r.AddSealed(3, ek, n, alice); err == nil {
		t.Fatal("a seal for bob opened with alice's identity")
	}
	if err := r.AddSealed(3, ek, n, bob); err != nil {
		t.Fatal(err)
	}
	if got, ok := r.Key(3); !ok || got != k || r.Epochs() != 1 {
		t.Fatal("the ring does not hold bob's epoch-3 key")
	}
}
