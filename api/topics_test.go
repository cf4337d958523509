package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/claudemesh/claudemesh-go/meshcrypto"
)

// cryptoPeer is a joined member holding its real identity.
type cryptoPeer struct {
	joined
	id meshcrypto.Identity
}

func (e *env) joinWithIdentity(inviteToken, name string) cryptoPeer {
	e.t.Helper()
	id, err := meshcrypto.GenerateIdentity()
	if err != nil {
		e.t.Fatal(err)
	}
	var j joined
	e.must("POST", "/v1/join", "", map[string]string{"token": inviteToken, "pubkey": id.PublicKeyHex(), "displayName": name}, http.StatusCreated, &j)
	return cryptoPeer{joined: j, id: id}
}

type messageOut struct {
	ID          string `json:"id"`
	Seq         int64  `json:"seq"`
	Ciphertext  string `json:"ciphertext"`
	Nonce       string `json:"nonce"`
	BodyVersion int    `json:"bodyVersion"`
	SenderName  string `json:"senderDisplayName"`
}

// TestEncryptedTopicRoundTrip: alice keys #general, seals the key to bob
// through pending-seals, bob opens it, encrypts a v2 body, posts it over
// REST; alice fetches it from history and decrypts it. The broker only ever
// held ciphertext.
func TestEncryptedTopicRoundTrip(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Crypto")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		alice, bob := e.joinWithIdentity(inv, "alice"), e.joinWithIdentity(inv, "bob")

		topicKey, err := meshcrypto.NewTopicKey()
		if err != nil {
			t.Fatal(err)
		}
		ek, nonce, err := meshcrypto.SealTopicKey(topicKey, alice.id, alice.id.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		e.must("POST", "/v1/topics/general/claim-key", alice.APIKey.Key, map[string]string{"encryptedKey": ek, "nonce": nonce}, http.StatusCreated, nil)
		// The loser of a claim learns the winner's key.
		bobEK, bobNonce, err := meshcrypto.SealTopicKey(topicKey, bob.id, bob.id.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		status, raw, _ := e.call("POST", "/v1/topics/general/claim-key", bob.APIKey.Key, map[string]string{"encryptedKey": bobEK, "nonce": bobNonce})
		var lost struct {
			Code      string `json:"code"`
			KeyPubkey string `json:"keyPubkey"`
		}
		_ = json.Unmarshal(raw, &lost)
		if status != http.StatusConflict || lost.Code != "topic_already_keyed" || len(lost.KeyPubkey) != 64 {
			t.Errorf("second claim = %d %s", status, raw)
		}

		var pending struct {
			Items []struct {
				MemberID string `json:"memberId"`
				Pubkey   string `json:"pubkey"`
			} `json:"items"`
		}
		e.must("GET", "/v1/topics/general/pending-seals", alice.APIKey.Key, nil, http.StatusOK, &pending)
		var bobPub string
		for _, p := range pending.Items {
			if p.MemberID == bob.Member.ID {
				bobPub = p.Pubkey
			}
		}
		if bobPub != bob.id.PublicKeyHex() {
			t.Fatalf("bob not pending with his key: %+v", pending)
		}
		pub, err := meshcrypto.ParsePublicKeyHex(bobPub)
		if err != nil {
			t.Fatal(err)
		}
		ek, nonce, err = meshcrypto.SealTopicKey(topicKey, alice.id, pub)
		if err != nil {
			t.Fatal(err)
		}
		e.must("POST", "/v1/topics/general/seal", alice.APIKey.Key, map[string]string{"memberId": bob.Member.ID, "encryptedKey": ek, "nonce": nonce}, http.StatusCreated, nil)
		e.wantProblem("POST", "/v1/topics/general/seal", alice.APIKey.Key, map[string]string{"memberId": bob.Member.ID, "encryptedKey": ek, "nonce": nonce}, http.StatusConflict, "seal_exists")

		var mine struct {
			EncryptedKey string `json:"encryptedKey"`
			Nonce        string `json:"nonce"`
		}
		e.must("GET", "/v1/topics/general/key", bob.APIKey.Key, nil, http.StatusOK, &mine)
		bobKey, err := meshcrypto.OpenTopicKey(mine.EncryptedKey, mine.Nonce, bob.id)
		if err != nil || bobKey != topicKey {
			t.Fatalf("bob opens his seal: %v", err)
		}

		ct, n, err := meshcrypto.EncryptV2(bobKey, []byte("deploy at 5, @alice"))
		if err != nil {
			t.Fatal(err)
		}
		var posted messageOut
		e.must("POST", "/v1/messages", bob.APIKey.Key, map[string]any{"topic": "#general", "ciphertext": ct, "nonce": n, "bodyVersion": 2,
			"mentions": []string{"alice"}, "clientMessageId": "bob-1"}, http.StatusCreated, &posted)
		var again messageOut
		e.must("POST", "/v1/messages", bob.APIKey.Key, map[string]any{"topic": "general", "ciphertext": ct, "nonce": n, "bodyVersion": 2,
			"clientMessageId": "bob-1"}, http.StatusOK, &again)
		if again.ID != posted.ID {
			t.Errorf("idempotent retry made a second message")
		}
		// v1 plaintext on a keyed topic is refused.
		e.wantProblem("POST", "/v1/messages", bob.APIKey.Key, map[string]any{"topic": "general", "ciphertext": base64.StdEncoding.EncodeToString([]byte("plain")), "bodyVersion": 1},
			http.StatusConflict, "plaintext_on_keyed_topic")

		var hist struct {
			Items []messageOut `json:"items"`
		}
		e.must("GET", "/v1/topics/general/messages", alice.APIKey.Key, nil, http.StatusOK, &hist)
		if len(hist.Items) != 1 || hist.Items[0].BodyVersion != 2 || hist.Items[0].SenderName != "bob" {
			t.Fatalf("history = %+v", hist.Items)
		}
		plain, err := meshcrypto.DecryptV2(topicKey, hist.Items[0].Ciphertext, hist.Items[0].Nonce)
		if err != nil || string(plain) != "deploy at 5, @alice" {
			t.Fatalf("alice decrypts %q, %v", plain, err)
		}

		var notes struct {
			Items []struct {
				ID         string `json:"id"`
				Ciphertext string `json:"ciphertext"`
			} `json:"items"`
		}
		e.must("GET", "/v1/notifications?unread=true", alice.APIKey.Key, nil, http.StatusOK, &notes)
		if len(notes.Items) != 1 || notes.Items[0].Ciphertext != ct {
			t.Fatalf("alice's notifications = %+v", notes)
		}
		var upd struct {
			Updated int `json:"updated"`
		}
		e.must("POST", "/v1/notifications/read", alice.APIKey.Key, map[string]any{"ids": []string{notes.Items[0].ID}}, http.StatusOK, &upd)
		if upd.Updated != 1 {
			t.Errorf("updated = %d", upd.Updated)
		}
		e.must("POST", "/v1/notifications/read", alice.APIKey.Key, map[string]any{"upTo": notes.Items[0].ID}, http.StatusOK, &upd)
		if upd.Updated != 0 {
			t.Errorf("second read updated = %d, want 0", upd.Updated)
		}
	})
}

func TestTopicsOverHTTP(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		owner := e.signup()
		m := e.createMesh(owner.AccessToken, "Topics")
		inv := e.invite(owner.AccessToken, m.Mesh.ID, map[string]any{"maxUses": 2})
		alice, eve := e.join(inv, "alice"), e.join(inv, "eve")
		e.must("POST", "/v1/topics", alice.APIKey.Key, map[string]string{"name": "#secret", "visibility": "private"}, http.StatusCreated, nil)
		e.must("POST", "/v1/messages", alice.APIKey.Key, map[string]any{"topic": "secret", "ciphertext": base64.StdEncoding.EncodeToString([]byte("hi")), "bodyVersion": 1}, http.StatusCreated, nil)
		for _, path := range []string{"/v1/topics/secret", "/v1/topics/secret/messages", "/v1/topics/%23secret/messages", "/v1/topics/secret/members", "/v1/topics/secret/pending-seals", "/v1/topics/secret/key"} {
			e.wantProblem("GET", path, eve.APIKey.Key, nil, http.StatusNotFound, "topic_not_found")
		}
		e.wantProblem("POST", "/v1/messages", eve.APIKey.Key, map[string]any{"topic": "secret", "ciphertext": "aGk=", "bodyVersion": 1}, http.StatusNotFound, "topic_not_found")
		e.wantProblem("PATCH", "/v1/topics/secret/read", eve.APIKey.Key, map[string]any{"seq": 1}, http.StatusNotFound, "topic_not_found")

		// Public topic, read marks and unread counts.
		e.must("POST", "/v1/topics", alice.APIKey.Key, map[string]string{"name": "news"}, http.StatusCreated, nil)
		var newsMsg messageOut
		e.must("POST", "/v1/messages", alice.APIKey.Key, map[string]any{"topic": "news", "ciphertext": "aGk=", "bodyVersion": 1}, http.StatusCreated, &newsMsg)
		e.wantProblem("PATCH", "/v1/topics/news/read", eve.APIKey.Key, map[string]any{"seq": 5}, http.StatusForbidden, "not_topic_member")
		e.must("GET", "/v1/topics/news/messages", eve.APIKey.Key, nil, http.StatusOK, nil)
		var list struct {
			Items []struct {
				Name   string `json:"name"`
				Joined bool   `json:"joined"`
				Unread *int64 `json:"unread"`
			} `json:"items"`
		}
		e.must("GET", "/v1/topics", eve.APIKey.Key, nil, http.StatusOK, &list)
		for _, it := range list.Items {
			switch it.Name {
			case "secret":
				t.Error("eve sees #secret")
			case "news":
				if it.Joined || it.Unread != nil {
					t.Errorf("eve's #news = %+v", it)
				}
			}
		}
		e.must("POST", "/v1/topics/news/join", eve.APIKey.Key, nil, http.StatusOK, nil)
		e.must("PATCH", "/v1/topics/news/read", eve.APIKey.Key, map[string]any{"seq": newsMsg.Seq}, http.StatusOK, nil)
		e.must("GET", "/v1/topics?q=new", eve.APIKey.Key, nil, http.StatusOK, &list)
		if len(list.Items) != 1 || list.Items[0].Unread == nil || *list.Items[0].Unread != 0 {
			t.Errorf("after join + read: %+v", list.Items)
		}
		e.wantProblem("GET", "/v1/topics/news/messages?before=abc", eve.APIKey.Key, nil, http.StatusBadRequest, "invalid_query")
	})
}
