package meshcrypto

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/crypto/nacl/secretbox"
)

// vectors mirrors testdata/vectors.json, written by testdata/gen_vectors.mjs
// with libsodium itself. These tests are the libsodium→Go half of SPEC §9's
// "checked both ways" and need no node.
type vectors struct {
	LibsodiumWrappers string `json:"libsodium_wrappers"`
	Libsodium         string `json:"libsodium"`
	Identities        []struct {
		Name          string `json:"name"`
		Seed          string `json:"seed"`
		Ed25519PK     string `json:"ed25519_pk"`
		Ed25519SK     string `json:"ed25519_sk"`
		X25519PK      string `json:"x25519_pk"`
		X25519SK      string `json:"x25519_sk"`
		X25519PKFromS string `json:"x25519_pk_from_sk"`
	} `json:"identities"`
	PkToCurve25519 []struct {
		Label     string `json:"label"`
		Ed25519PK string `json:"ed25519_pk"`
		OK        bool   `json:"ok"`
		X25519PK  string `json:"x25519_pk"`
	} `json:"pk_to_curve25519"`
	BoxPeerKeys struct {
		Sender    string `json:"sender"`
		Nonce     string `json:"nonce"`
		Plaintext string `json:"plaintext"`
		Cases     []struct {
			Label      string `json:"label"`
			X25519PK   string `json:"x25519_pk"`
			OK         bool   `json:"ok"`
			Ciphertext string `json:"ciphertext"`
		} `json:"cases"`
	} `json:"box_peer_keys"`
	Seals []struct {
		Sender       string `json:"sender"`
		Recipient    string `json:"recipient"`
		TopicKey     string `json:"topic_key"`
		Nonce        string `json:"nonce"`
		EncryptedKey string `json:"encrypted_key"`
	} `json:"seals"`
	V2 []struct {
		TopicKey     string `json:"topic_key"`
		PlaintextHex string `json:"plaintext_hex"`
		Nonce        string `json:"nonce"`
		Ciphertext   string `json:"ciphertext"`
	} `json:"v2"`
	Direct []struct {
		Sender       string `json:"sender"`
		Recipient    string `json:"recipient"`
		PlaintextHex string `json:"plaintext_hex"`
		Nonce        string `json:"nonce"`
		Ciphertext   string `json:"ciphertext"`
	} `json:"direct"`
	V1 []struct {
		Text string `json:"text"`
		Body string `json:"body"`
	} `json:"v1"`
}

func loadVectors(t *testing.T) (*vectors, map[string]Identity) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatalf("reading libsodium vectors: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("parsing vectors.json: %v", err)
	}
	ids := make(map[string]Identity)
	for _, id := range v.Identities {
		got, err := IdentityFromSeed(mustHex(t, id.Seed))
		if err != nil {
			t.Fatalf("identity %s: %v", id.Name, err)
		}
		ids[id.Name] = got
	}
	return &v, ids
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in vectors: %v", err)
	}
	return b
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := decodeB64("vector", s)
	if err != nil {
		t.Fatalf("bad base64 in vectors: %v", err)
	}
	return b
}

func mustKey32(t *testing.T, s string) [32]byte {
	t.Helper()
	b := mustHex(t, s)
	if len(b) != 32 {
		t.Fatalf("want 32 bytes, got %d", len(b))
	}
	return [32]byte(b)
}

func mustNonce(t *testing.T, s string) *[NonceSize]byte {
	t.Helper()
	n, err := decodeNonce(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestVectorsPinnedVersion keeps vectors.json, package.json and the
// cross-check test on one libsodium-wrappers version, so a regenerated file
// cannot silently come from a different libsodium.
func TestVectorsPinnedVersion(t *testing.T) {
	v, _ := loadVectors(t)
	if pinned := pinnedWrappersVersion(t); v.LibsodiumWrappers != pinned {
		t.Fatalf("vectors.json made with libsodium-wrappers %s, package.json pins %s: regenerate with gen_vectors.mjs", v.LibsodiumWrappers, pinned)
	}
	if v.Libsodium == "" {
		t.Fatal("vectors.json does not record the libsodium version")
	}
	t.Logf("vectors from libsodium %s via libsodium-wrappers %s", v.Libsodium, v.LibsodiumWrappers)
}

func TestIdentityVectors(t *testing.T) {
	v, ids := loadVectors(t)
	for _, want := range v.Identities {
		t.Run(want.Name, func(t *testing.T) {
			id := ids[want.Name]
			if got := id.PublicKeyHex(); got != want.Ed25519PK {
				t.Errorf("ed25519 pk: got %s, libsodium %s", got, want.Ed25519PK)
			}
			if got := id.SecretKeyHex(); got != want.Ed25519SK {
				t.Error("ed25519 sk (seed||pk) differs from libsodium's layout")
			}
			xpk := id.X25519PublicKey()
			if got := hex.EncodeToString(xpk[:]); got != want.X25519PK {
				t.Errorf("pk_to_curve25519: got %s, libsodium %s", got, want.X25519PK)
			}
			if want.X25519PKFromS != want.X25519PK {
				t.Errorf("libsodium: scalarmult_base(sk_to_curve25519) %s != pk_to_curve25519 %s", want.X25519PKFromS, want.X25519PK)
			}
			xsk, err := Ed25519PrivateKeyToX25519(id.PrivateKey())
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(xsk[:]); got != want.X25519SK {
				t.Error("sk_to_curve25519 differs from libsodium")
			}
			if xsk != id.xSec {
				t.Error("Identity holds a different x25519 secret than Ed25519PrivateKeyToX25519")
			}
			base, err := curve25519.X25519(xsk[:], curve25519.Basepoint)
			if err != nil || !bytes.Equal(base, xpk[:]) {
				t.Error("X25519(sk, base) does not give the converted public key")
			}
			back, err := ParseSecretKeyHex(want.Ed25519SK)
			if err != nil || back.PublicKeyHex() != want.Ed25519PK {
				t.Errorf("ParseSecretKeyHex(libsodium sk) = %v, %v", back, err)
			}
		})
	}
}

func TestPkToCurve25519Vectors(t *testing.T) {
	v, _ := loadVectors(t)
	var accepted, refused int
	for _, c := range v.PkToCurve25519 {
		t.Run(c.Label, func(t *testing.T) {
			got, err := Ed25519PublicKeyToX25519(ed25519.PublicKey(mustHex(t, c.Ed25519PK)))
			if (err == nil) != c.OK {
				t.Fatalf("Go ok=%v (err %v), libsodium ok=%v for %s", err == nil, err, c.OK, c.Ed25519PK)
			}
			if err != nil {
				refused++
				if !errors.Is(err, ErrInvalidPublicKey) {
					t.Errorf("error %v does not wrap ErrInvalidPublicKey", err)
				}
				return
			}
			accepted++
			if h := hex.EncodeToString(got[:]); h != c.X25519PK {
				t.Errorf("got %s, libsodium %s", h, c.X25519PK)
			}
		})
	}
	t.Logf("%d conversions agree with libsodium (%d accepted, %d refused)", accepted+refused, accepted, refused)
}

// TestBoxPeerKeyVectors pins exactly which x25519 peer keys crypto_box_easy
// refuses, and that for every accepted one (including twist points and
// non-canonical encodings) the Go box is byte-identical.
func TestBoxPeerKeyVectors(t *testing.T) {
	v, ids := loadVectors(t)
	sender := ids[v.BoxPeerKeys.Sender]
	nonce := mustNonce(t, v.BoxPeerKeys.Nonce)
	for _, c := range v.BoxPeerKeys.Cases {
		t.Run(c.Label, func(t *testing.T) {
			peer := mustKey32(t, c.X25519PK)
			if x25519HasSmallOrder(&peer) == c.OK {
				t.Errorf("x25519HasSmallOrder=%v, libsodium ok=%v", !c.OK, c.OK)
			}
			ct, err := boxSeal(nil, []byte(v.BoxPeerKeys.Plaintext), nonce, &peer, &sender.xSec)
			if (err == nil) != c.OK {
				t.Fatalf("Go ok=%v (err %v), libsodium ok=%v", err == nil, err, c.OK)
			}
			if err != nil {
				if !errors.Is(err, ErrWeakX25519Key) {
					t.Errorf("error %v does not wrap ErrWeakX25519Key", err)
				}
				return
			}
			if got := encodeB64(ct); got != c.Ciphertext {
				t.Errorf("box differs from libsodium:\n got %s\nwant %s", got, c.Ciphertext)
			}
		})
	}
}

func TestSealVectors(t *testing.T) {
	v, ids := loadVectors(t)
	for i, s := range v.Seals {
		t.Run(s.Sender+"→"+s.Recipient, func(t *testing.T) {
			sender, recipient := ids[s.Sender], ids[s.Recipient]
			want := mustKey32(t, s.TopicKey)
			got, err := OpenTopicKey(s.EncryptedKey, s.Nonce, recipient)
			if err != nil || got != want {
				t.Fatalf("OpenTopicKey(libsodium seal %d) = %x, %v", i, got, err)
			}
			if err := ValidSealBlob(s.EncryptedKey, s.Nonce); err != nil {
				t.Errorf("ValidSealBlob refuses a libsodium seal: %v", err)
			}
			// Same nonce → our seal must be the same bytes.
			enc, nonce, err := sealTopicKeyWithNonce(want, sender, recipient.PublicKey(), mustNonce(t, s.Nonce))
			if err != nil || enc != s.EncryptedKey || nonce != s.Nonce {
				t.Errorf("Go seal differs from libsodium:\n got %s\nwant %s (err %v)", enc, s.EncryptedKey, err)
			}
			// And plain x/crypto nacl/box, with no wrapper of ours in the way.
			blob := mustB64(t, s.EncryptedKey)
			rx, sx := recipient.X25519PublicKey(), sender.xSec
			plain := box.Seal(nil, want[:], mustNonce(t, s.Nonce), &rx, &sx)
			if !bytes.Equal(plain, blob[X25519KeySize:]) {
				t.Error("x/crypto nacl/box.Seal is not byte-compatible with crypto_box_easy")
			}
			opened, ok := box.Open(nil, blob[X25519KeySize:], mustNonce(t, s.Nonce), (*[32]byte)(blob[:32]), &recipient.xSec)
			if !ok || !bytes.Equal(opened, want[:]) {
				t.Error("x/crypto nacl/box.Open cannot open crypto_box_easy output")
			}
		})
	}
}

func TestV2Vectors(t *testing.T) {
	v, _ := loadVectors(t)
	for i, c := range v.V2 {
		key := mustKey32(t, c.TopicKey)
		want := mustHex(t, c.PlaintextHex)
		got, err := DecryptV2(key, c.Ciphertext, c.Nonce)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("v2 %d: DecryptV2 = %q, %v", i, got, err)
		}
		ct, nonce := encryptV2WithNonce(key, want, mustNonce(t, c.Nonce))
		if ct != c.Ciphertext || nonce != c.Nonce {
			t.Errorf("v2 %d: Go secretbox differs from crypto_secretbox_easy", i)
		}
		if plain := secretbox.Seal(nil, want, mustNonce(t, c.Nonce), &key); encodeB64(plain) != c.Ciphertext {
			t.Errorf("v2 %d: x/crypto nacl/secretbox.Seal is not byte-compatible with crypto_secretbox_easy", i)
		}
		if err := ValidCiphertext(c.Ciphertext, c.Nonce); err != nil {
			t.Errorf("v2 %d: ValidCiphertext refuses libsodium output: %v", i, err)
		}
	}
}

func TestDirectVectors(t *testing.T) {
	v, ids := loadVectors(t)
	for i, c := range v.Direct {
		sender, recipient := ids[c.Sender], ids[c.Recipient]
		want := mustHex(t, c.PlaintextHex)
		got, err := OpenDirect(c.Ciphertext, c.Nonce, recipient, sender.PublicKeyHex())
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("direct %d: OpenDirect = %q, %v", i, got, err)
		}
		ct, nonce, err := sealDirectWithNonce(want, sender, recipient.PublicKeyHex(), mustNonce(t, c.Nonce))
		if err != nil || ct != c.Ciphertext || nonce != c.Nonce {
			t.Errorf("direct %d: Go box differs from crypto_box_easy (err %v)", i, err)
		}
		rx, sx := recipient.X25519PublicKey(), sender.xSec
		if plain := box.Seal(nil, want, mustNonce(t, c.Nonce), &rx, &sx); encodeB64(plain) != c.Ciphertext {
			t.Errorf("direct %d: x/crypto nacl/box.Seal is not byte-compatible with crypto_box_easy", i)
		}
	}
}

func TestV1Vectors(t *testing.T) {
	v, _ := loadVectors(t)
	for i, c := range v.V1 {
		if got := EncodeV1(c.Text); got != c.Body {
			t.Errorf("v1 %d: EncodeV1 = %s, libsodium to_base64 = %s", i, got, c.Body)
		}
		if got, err := DecodeV1(c.Body); err != nil || got != c.Text {
			t.Errorf("v1 %d: DecodeV1 = %q, %v", i, got, err)
		}
	}
}
