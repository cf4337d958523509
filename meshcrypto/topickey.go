package meshcrypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
)

// NewTopicKey returns a fresh 32-byte topic key from crypto/rand (SPEC §11:
// no ids or keys from a non-crypto RNG).
func NewTopicKey() ([TopicKeySize]byte, error) {
	var k [TopicKeySize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return k, fmt.Errorf("meshcrypto: reading randomness: %w", err)
	}
	return k, nil
}

// SealTopicKey seals topicKey for one recipient in the seed-003 wire format:
// encryptedKeyB64 is base64(sender_x25519_pub(32) ||
// crypto_box_easy(topicKey, nonce, recipient_x25519, sender_x25519_sec)), 80
// bytes decoded, and nonceB64 is base64 of 24 fresh random bytes. The
// sender's key travels inline so that a re-sealed copy made by any member
// opens the same way as the creator's copy.
func SealTopicKey(topicKey [TopicKeySize]byte, sender Identity, recipientEd25519Pub ed25519.PublicKey) (encryptedKeyB64, nonceB64 string, err error) {
	nonce, err := randomNonce()
	if err != nil {
		return "", "", err
	}
	return sealTopicKeyWithNonce(topicKey, sender, recipientEd25519Pub, nonce)
}

func sealTopicKeyWithNonce(topicKey [TopicKeySize]byte, sender Identity, recipient ed25519.PublicKey, nonce *[NonceSize]byte) (string, string, error) {
	if sender.IsZero() {
		return "", "", ErrNoIdentity
	}
	rx, err := Ed25519PublicKeyToX25519(recipient)
	if err != nil {
		return "", "", err
	}
	out := make([]byte, X25519KeySize, SealedTopicKeySize)
	copy(out, sender.xPub[:])
	out, err = boxSeal(out, topicKey[:], nonce, &rx, &sender.xSec)
	if err != nil {
		return "", "", err
	}
	return encodeB64(out), encodeB64(nonce[:]), nil
}

// OpenTopicKey opens a sealed topic key addressed to recipient, taking the
// sender's x25519 public key from the blob's 32-byte prefix (seed 003: the
// inline prefix, not topics.encrypted_key_pubkey, is the wire truth). It
// fails with ErrDecrypt if the seal was made for another key or altered, and
// refuses what libsodium's crypto_box_open_easy refuses, no more: opening is
// where compatibility matters, strictness belongs in ValidSealBlob.
func OpenTopicKey(encryptedKeyB64, nonceB64 string, recipient Identity) ([TopicKeySize]byte, error) {
	var key [TopicKeySize]byte
	if recipient.IsZero() {
		return key, ErrNoIdentity
	}
	blob, err := decodeSealBlob(encryptedKeyB64)
	if err != nil {
		return key, err
	}
	nonce, err := decodeNonce(nonceB64)
	if err != nil {
		return key, err
	}
	sender := (*[X25519KeySize]byte)(blob[:X25519KeySize])
	msg, err := boxOpen(blob[X25519KeySize:], nonce, sender, &recipient.xSec)
	if err != nil {
		return key, err
	}
	copy(key[:], msg) // exactly 32 bytes: 80 - 32 - 16
	clear(msg)
	return key, nil
}

// SealSender returns the sender x25519 public key embedded in a sealed topic
// key, after the same shape checks as ValidSealBlob. The broker can compare
// it with Ed25519PublicKeyToX25519 of the authenticated sealer's key to
// refuse a seal that claims to come from someone else.
func SealSender(encryptedKeyB64 string) ([X25519KeySize]byte, error) {
	var x [X25519KeySize]byte
	blob, err := decodeSealBlob(encryptedKeyB64)
	if err != nil {
		return x, err
	}
	copy(x[:], blob)
	if !x25519PrimeOrderPoint(&x) {
		return x, fmt.Errorf("%w: encrypted_key sender prefix", ErrWeakX25519Key)
	}
	return x, nil
}

// ValidSealBlob is the broker's shape check for a submitted seal, which it
// cannot open. It returns nil when:
//
//   - both fields are canonical standard base64 (see package doc);
//   - encrypted_key decodes to exactly SealedTopicKeySize (80) bytes and the
//     nonce to exactly NonceSize (24);
//   - the 32-byte sender prefix is a "valid curve25519 point encoding",
//     which here means: canonical (top bit clear, value < 2^255-19), not one
//     of the small-order points libsodium's crypto_box refuses (the
//     has_small_order blacklist, which covers the all-zero key), and the
//     u-coordinate of a point on Curve25519 itself (not its twist) in the
//     prime-order subgroup.
//
// The last rule is stricter than crypto_box, which runs X25519 on any 32
// bytes outside the blacklist. It admits exactly the keys that
// crypto_scalarmult_base and crypto_sign_ed25519_pk_to_curve25519 can output
// — every honest client's sender key — so it refuses only blobs no real key
// pair made, before they are stored and handed to other members. It cannot
// tell whether the ciphertext authenticates; only the recipient can.
func ValidSealBlob(encryptedKeyB64, nonceB64 string) error {
	if _, err := SealSender(encryptedKeyB64); err != nil {
		return err
	}
	_, err := decodeNonce(nonceB64)
	return err
}

// decodeSealBlob decodes encrypted_key and checks its fixed length.
func decodeSealBlob(s string) ([]byte, error) {
	blob, err := decodeB64("encrypted_key", s)
	if err != nil {
		return nil, err
	}
	if len(blob) != SealedTopicKeySize {
		return nil, fmt.Errorf("%w: encrypted_key: %d bytes, want %d", ErrMalformed, len(blob), SealedTopicKeySize)
	}
	return blob, nil
}
