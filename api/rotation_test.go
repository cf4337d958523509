package api_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// keyClient is a Go client's view of one keyed topic: its identity and the
// topic keys it has opened, by epoch.
type keyClient struct {
	cryptoPeer
	ring *meshcrypto.KeyRing
}

type sealOut struct {
	KeyEpoch     int    `json:"keyEpoch"`
	EncryptedKey string `json:"encryptedKey"`
	Nonce        string `json:"nonce"`
}

type epochMessage struct {
	ID          string `json:"id"`
	Seq         int64  `json:"seq"`
	KeyEpoch    int    `json:"keyEpoch"`
	Ciphertext  string `json:"ciphertext"`
	Nonce       string `json:"nonce"`
	BodyVersion int    `json:"bodyVersion"`
}

// fetchKey opens the client's seal of an epoch (0 = current) into its ring.
func (e *env) fetchKey(c *keyClient, topic string, epoch int) int {
	e.t.Helper()
	path := "/v1/topics/" + topic + "/key"
	if epoch > 0 {
		path += "?epoch=" + itoa(epoch)
	}
	var s sealOut
	e.must("GET", path, c.APIKey.Key, nil, http.StatusOK, &s)
	if err := c.ring.AddSealed(s.KeyEpoch, s.EncryptedKey, s.Nonce, c.id); err != nil {
		e.t.Fatal(err)
	}
	return s.KeyEpoch
}

// claim keys the topic's current epoch with a fresh key.
func (e *env) claim(c *keyClient, topic string) int {
	e.t.Helper()
	k, err := meshcrypto.NewTopicKey()
	if err != nil {
		e.t.Fatal(err)
	}
	ek, n, err := meshcrypto.SealTopicKey(k, c.id, c.id.PublicKey())
	if err != nil {
		e.t.Fatal(err)
	}
	var s sealOut
	e.must("POST", "/v1/topics/"+topic+"/claim-key", c.APIKey.Key, map[string]string{"encryptedKey": ek, "nonce": n}, http.StatusCreated, &s)
	c.ring.Add(s.KeyEpoch, k)
	return s.KeyEpoch
}

// sealPending seals the current epoch's key for every pending member and
// returns who was pending.
func (e *env) sealPending(c *keyClient, topic string, epoch int) []string {
	e.t.Helper()
	var pending page[struct {
		MemberID string `json:"memberId"`
		Pubkey   string `json:"pubkey"`
	}]
	e.must("GET", "/v1/topics/"+topic+"/pending-seals", c.APIKey.Key, nil, http.StatusOK, &pending)
	k, ok := c.ring.Key(epoch)
	if !ok {
		e.t.Fatalf("sealer holds no key of epoch %d", epoch)
	}
	var ids []string
	for _, p := range pending.Items {
		ids = append(ids, p.MemberID)
		if p.MemberID == c.Member.ID {
			continue
		}
		pub, err := meshcrypto.ParsePublicKeyHex(p.Pubkey)
		if err != nil {
			e.t.Fatal(err)
		}
		ek, n, err := meshcrypto.SealTopicKey(k, c.id, pub)
		if err != nil {
			e.t.Fatal(err)
		}
		e.must("POST", "/v1/topics/"+topic+"/seal", c.APIKey.Key, map[string]string{"memberId": p.MemberID, "encryptedKey": ek, "nonce": n}, http.StatusCreated, nil)
	}
	return ids
}

func (e *env) postEncrypted(c *keyClient, topic string, epoch int, text string) epochMessage {
	e.t.Helper()
	ct, n, err := c.ring.Encrypt(epoch, []byte(text))
	if err != nil {
		e.t.Fatal(err)
	}
	var m epochMessage
	e.must("POST", "/v1/messages", c.APIKey.Key, map[string]any{"topic": topic, "bodyVersion": 2, "keyEpoch": epoch, "ciphertext": ct, "nonce": n},
		http.StatusCreated, &m)
	return m
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestKeyRotationOnRemoval, end to end with Go clients over REST: A, B and C
// share a keyed private topic; C is removed, which starts key epoch 2; A
// claims it and posts; C cannot open the new message with any key it
// holds, though it still opens the old one; B opens both once A has
// re-sealed for it. Revoking a member and the explicit rotate-key start
// epochs the same way.
func TestKeyRotationOnRemoval(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Rotation")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 3})
		peers := make([]*keyClient, 3)
		for i, name := range []string{"a", "b", "c"} {
			peers[i] = &keyClient{cryptoPeer: e.joinWithIdentity(inv, name), ring: meshcrypto.NewKeyRing()}
		}
		a, b, c := peers[0], peers[1], peers[2]
		e.must("POST", "/v1/topics", a.APIKey.Key, map[string]string{"name": "vault", "visibility": "private"}, http.StatusCreated, nil)
		for _, p := range []*keyClient{b, c} {
			e.must("POST", "/v1/topics/vault/members", a.APIKey.Key, map[string]string{"memberId": p.Member.ID}, http.StatusCreated, nil)
		}

		// Epoch 1: A keys the topic and seals for B and C.
		if ep := e.claim(a, "vault"); ep != 1 {
			t.Fatalf("first claim is epoch %d", ep)
		}
		e.sealPending(a, "vault", 1)
		for _, p := range []*keyClient{b, c} {
			if ep := e.fetchKey(p, "vault", 0); ep != 1 {
				t.Fatalf("%s fetched epoch %d", p.Member.ID, ep)
			}
		}
		old := e.postEncrypted(a, "vault", 1, "before the removal")
		if old.KeyEpoch != 1 {
			t.Fatalf("old message epoch %d", old.KeyEpoch)
		}

		// Removing C starts epoch 2, unclaimed.
		e.must("DELETE", "/v1/topics/vault/members/"+c.Member.ID, a.APIKey.Key, nil, http.StatusNoContent, nil)
		var topic struct {
			KeyEpoch  int     `json:"keyEpoch"`
			Keyed     bool    `json:"keyed"`
			KeyPubkey *string `json:"keyPubkey"`
		}
		e.must("GET", "/v1/topics/vault", a.APIKey.Key, nil, http.StatusOK, &topic)
		if topic.KeyEpoch != 2 || !topic.Keyed || topic.KeyPubkey != nil {
			t.Fatalf("after the removal: %+v", topic)
		}
		// A stale epoch, and the new epoch before anyone claims it, are refused.
		ct, n, _ := a.ring.Encrypt(1, []byte("stale"))
		for _, tc := range []struct {
			epoch any
			code  string
		}{{1, "key_epoch_mismatch"}, {nil, "key_epoch_mismatch"}, {2, "topic_key_unclaimed"}} {
			body := map[string]any{"topic": "vault", "bodyVersion": 2, "ciphertext": ct, "nonce": n}
			if tc.epoch != nil {
				body["keyEpoch"] = tc.epoch
			}
			status, raw, _ := e.call("POST", "/v1/messages", a.APIKey.Key, body)
			var p struct {
				Code     string `json:"code"`
				KeyEpoch int    `json:"keyEpoch"`
			}
			_ = json.Unmarshal(raw, &p)
			if status != http.StatusConflict || p.Code != tc.code || p.KeyEpoch != 2 {
				t.Errorf("post with epoch %v = %d %s", tc.epoch, status, raw)
			}
		}
		// Nobody can seal an epoch before it is claimed, not even with the old key.
		k1, _ := a.ring.Key(1)
		ek, sn, err := meshcrypto.SealTopicKey(k1, a.id, b.id.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		e.wantProblem("POST", "/v1/topics/vault/seal", a.APIKey.Key, map[string]string{"memberId": b.Member.ID, "encryptedKey": ek, "nonce": sn},
			http.StatusConflict, "topic_not_keyed")

		// A claims epoch 2 and posts; only B is pending, never C.
		if ep := e.claim(a, "vault"); ep != 2 {
			t.Fatalf("claim after the removal is epoch %d", ep)
		}
		fresh := e.postEncrypted(a, "vault", 2, "after the removal")
		if fresh.KeyEpoch != 2 {
			t.Fatalf("new message epoch %d", fresh.KeyEpoch)
		}
		e.wantProblem("GET", "/v1/topics/vault/key", b.APIKey.Key, nil, http.StatusNotFound, "seal_not_found")
		if pending := e.sealPending(a, "vault", 2); len(pending) != 1 || pending[0] != b.Member.ID {
			t.Fatalf("pending for epoch 2: %v, want only b", pending)
		}

		// C holds only epoch 1: the new message opens with nothing it has.
		e.wantProblem("GET", "/v1/topics/vault/messages", c.APIKey.Key, nil, http.StatusNotFound, "topic_not_found")
		e.wantProblem("GET", "/v1/topics/vault/key?epoch=2", c.APIKey.Key, nil, http.StatusNotFound, "topic_not_found")
		if _, err := c.ring.Decrypt(fresh.KeyEpoch, fresh.Ciphertext, fresh.Nonce); !errors.Is(err, meshcrypto.ErrNoEpochKey) {
			t.Errorf("C opened the new message by epoch: %v", err)
		}
		for epoch := 1; epoch <= 2; epoch++ {
			if k, ok := c.ring.Key(epoch); ok {
				if _, err := meshcrypto.DecryptV2(k, fresh.Ciphertext, fresh.Nonce); !errors.Is(err, meshcrypto.ErrDecrypt) {
					t.Errorf("C's epoch-%d key opened the new message: %v", epoch, err)
				}
			}
		}
		if got, err := c.ring.Decrypt(old.KeyEpoch, old.Ciphertext, old.Nonce); err != nil || string(got) != "before the removal" {
			t.Errorf("C lost the old message: %q %v", got, err)
		}

		// B, re-sealed, opens both from history by each row's epoch.
		if ep := e.fetchKey(b, "vault", 0); ep != 2 {
			t.Fatalf("b fetched epoch %d", ep)
		}
		var hist page[epochMessage]
		e.must("GET", "/v1/topics/vault/messages", b.APIKey.Key, nil, http.StatusOK, &hist) // newest first
		want := []string{"after the removal", "before the removal"}
		if len(hist.Items) != 2 {
			t.Fatalf("history: %+v", hist.Items)
		}
		for i, row := range hist.Items {
			got, err := b.ring.Decrypt(row.KeyEpoch, row.Ciphertext, row.Nonce)
			if err != nil || string(got) != want[i] {
				t.Errorf("b opens row %d (epoch %d): %q %v", i, row.KeyEpoch, got, err)
			}
		}
		var s1 sealOut
		e.must("GET", "/v1/topics/vault/key?epoch=1", b.APIKey.Key, nil, http.StatusOK, &s1)
		if s1.KeyEpoch != 1 {
			t.Errorf("old seal epoch %d", s1.KeyEpoch)
		}

		// Revoking B starts epoch 3; an explicit rotation of the unclaimed
		// epoch changes nothing; once claimed, it starts epoch 4.
		admin := e.memberToken(owner.AccessToken, m.Mesh.ID)
		e.must("DELETE", "/v1/members/"+b.Member.ID, admin, nil, http.StatusNoContent, nil)
		e.must("GET", "/v1/topics/vault", a.APIKey.Key, nil, http.StatusOK, &topic)
		if topic.KeyEpoch != 3 || topic.KeyPubkey != nil {
			t.Fatalf("after revoking b: %+v", topic)
		}
		e.must("POST", "/v1/topics/vault/rotate-key", a.APIKey.Key, nil, http.StatusOK, &topic)
		if topic.KeyEpoch != 3 {
			t.Fatalf("rotating an unclaimed epoch moved to %d", topic.KeyEpoch)
		}
		e.claim(a, "vault")
		e.must("POST", "/v1/topics/vault/rotate-key", a.APIKey.Key, nil, http.StatusOK, &topic)
		if topic.KeyEpoch != 4 {
			t.Fatalf("explicit rotation reached epoch %d", topic.KeyEpoch)
		}
		e.wantProblem("POST", "/v1/topics/general/rotate-key", a.APIKey.Key, nil, http.StatusForbidden, "lead_required")
		e.wantProblem("POST", "/v1/topics/general/rotate-key", admin, nil, http.StatusConflict, "topic_not_keyed")
	})
}
