package meshcrypto

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sizes fixed by the wire format (SPEC §9). They are exported so that the
// broker's request validation and the OpenAPI limits can quote them rather
// than repeat magic numbers.
const (
	// PublicKeyHexLen is the length of an ed25519 public key rendered as hex.
	PublicKeyHexLen = 64
	// TopicKeySize is the size of a topic's symmetric secretbox key.
	TopicKeySize = 32
	// NonceSize is the size of every crypto_box / crypto_secretbox nonce.
	NonceSize = 24
	// X25519KeySize is the size of an x25519 public or secret key.
	X25519KeySize = 32
	// Overhead is the Poly1305 tag that crypto_box_easy and
	// crypto_secretbox_easy prepend to the ciphertext.
	Overhead = 16
	// SealedTopicKeySize is the decoded size of a topic_member_keys.encrypted_key:
	// the sender's x25519 public key, the tag and the sealed 32-byte topic key.
	SealedTopicKeySize = X25519KeySize + Overhead + TopicKeySize
)

// Errors returned by this package. Callers compare with errors.Is; the
// returned errors wrap these with detail that is safe to log (never key
// material or plaintext).
var (
	// ErrMalformed reports input that is not shaped like the wire format:
	// bad base64, a wrong length, a nonce that is not 24 bytes.
	ErrMalformed = errors.New("meshcrypto: malformed input")
	// ErrInvalidPublicKey reports an ed25519 public key that libsodium's
	// crypto_sign_ed25519_pk_to_curve25519 would refuse, or text that is not
	// 64 lowercase hex characters.
	ErrInvalidPublicKey = errors.New("meshcrypto: invalid ed25519 public key")
	// ErrInvalidSecretKey reports a secret key of the wrong size or whose
	// embedded public half does not match its seed.
	ErrInvalidSecretKey = errors.New("meshcrypto: invalid ed25519 secret key")
	// ErrWeakX25519Key reports an x25519 public key that libsodium's
	// crypto_box refuses (a small-order point, so the shared secret would be
	// predictable), or, in ValidSealBlob, one no real key pair can produce.
	ErrWeakX25519Key = errors.New("meshcrypto: unusable x25519 public key")
	// ErrDecrypt reports a ciphertext that does not authenticate: it was
	// tampered with, or it is opened with the wrong key or nonce.
	ErrDecrypt = errors.New("meshcrypto: decryption failed")
	// ErrNoIdentity reports use of a zero Identity, which holds no key.
	ErrNoIdentity = errors.New("meshcrypto: empty identity")
)

// b64 is canonical standard base64: Strict rejects non-zero padding bits, so
// a byte string has exactly one accepted encoding.
var b64 = base64.StdEncoding.Strict()

// encodeB64 renders bytes the way libsodium-wrappers' to_base64 with the
// ORIGINAL variant (and Node's Buffer) does: standard alphabet, padded.
func encodeB64(b []byte) string { return b64.EncodeToString(b) }

// decodeB64 decodes canonical standard base64. Go's decoder silently skips
// '\r' and '\n'; those are refused here so that the broker never stores two
// spellings of the same ciphertext.
func decodeB64(field, s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: %s: line breaks in base64", ErrMalformed, field)
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not canonical standard base64", ErrMalformed, field)
	}
	return b, nil
}

// decodeNonce decodes a base64 nonce and insists on exactly NonceSize bytes,
// because XSalsa20 with a short or long nonce is simply a different cipher.
func decodeNonce(s string) (*[NonceSize]byte, error) {
	b, err := decodeB64("nonce", s)
	if err != nil {
		return nil, err
	}
	if len(b) != NonceSize {
		return nil, fmt.Errorf("%w: nonce: %d bytes, want %d", ErrMalformed, len(b), NonceSize)
	}
	return (*[NonceSize]byte)(b), nil
}

// DecodeBase64 decodes canonical standard base64 as every wire field of the
// protocol is encoded: padded, no line breaks, zero padding bits. The broker
// validates bodies with it so one byte string has one stored spelling.
func DecodeBase64(s string) ([]byte, error) { return decodeB64("value", s) }
