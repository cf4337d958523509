package meshcrypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// Identity is a member's long-term key: an ed25519 key pair that signs the
// /ws hello, plus the x25519 pair derived from it with libsodium's
// conversions, which opens the seals and direct messages sent to the member.
// Deriving instead of storing a second key pair is what lets other members
// seal to nothing more than the peer_pubkey the broker already publishes.
//
// The zero Identity holds no key; every operation on it fails with
// ErrNoIdentity. An Identity is immutable and safe for concurrent use.
type Identity struct {
	priv ed25519.PrivateKey // libsodium layout: seed(32) || public key(32)
	xPub [X25519KeySize]byte
	xSec [X25519KeySize]byte
}

// GenerateIdentity makes a fresh identity from 32 bytes of crypto/rand.
func GenerateIdentity() (Identity, error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return Identity{}, fmt.Errorf("meshcrypto: reading randomness: %w", err)
	}
	defer clear(seed)
	return IdentityFromSeed(seed)
}

// IdentityFromSeed rebuilds an identity from its 32-byte ed25519 seed, the
// same derivation as libsodium's crypto_sign_seed_keypair.
func IdentityFromSeed(seed []byte) (Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return Identity{}, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalidSecretKey, len(seed), ed25519.SeedSize)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	xSec, err := Ed25519PrivateKeyToX25519(priv)
	if err != nil {
		return Identity{}, err
	}
	// A key made from a seed is always [s]B with s clamped, so it is in the
	// prime-order subgroup and the conversion cannot fail; checking anyway
	// costs nothing at key-load time.
	xPub, err := Ed25519PublicKeyToX25519(priv.Public().(ed25519.PublicKey))
	if err != nil {
		return Identity{}, err
	}
	return Identity{priv: priv, xPub: xPub, xSec: xSec}, nil
}

// ParseSecretKeyHex loads an identity from hex: either the 32-byte seed (64
// hex chars) or libsodium's 64-byte secret key seed||public key (128 hex
// chars, what the TypeScript CLI stores). For the 64-byte form the embedded
// public key must match the seed, so a corrupted or spliced key file is
// refused rather than producing seals nobody can open. Either hex case is
// accepted; secrets are never compared as text.
func ParseSecretKeyHex(s string) (Identity, error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: not hex", ErrInvalidSecretKey)
	}
	defer clear(b)
	switch len(b) {
	case ed25519.SeedSize:
		return IdentityFromSeed(b)
	case ed25519.PrivateKeySize:
		id, err := IdentityFromSeed(b[:ed25519.SeedSize])
		if err != nil {
			return Identity{}, err
		}
		if subtle.ConstantTimeCompare(id.priv[ed25519.SeedSize:], b[ed25519.SeedSize:]) != 1 {
			return Identity{}, fmt.Errorf("%w: public half does not match the seed", ErrInvalidSecretKey)
		}
		return id, nil
	default:
		return Identity{}, fmt.Errorf("%w: %d bytes, want 32 (seed) or 64 (seed||pk)", ErrInvalidSecretKey, len(b))
	}
}

// IsZero reports whether id is the zero Identity (no key loaded).
func (id Identity) IsZero() bool { return len(id.priv) == 0 }

// PublicKey returns the ed25519 public key (a copy; callers may modify it).
func (id Identity) PublicKey() ed25519.PublicKey {
	if id.IsZero() {
		return nil
	}
	return append(ed25519.PublicKey(nil), id.priv[ed25519.SeedSize:]...)
}

// PublicKeyHex returns the public key as the 64 lowercase hex characters
// stored in members.peer_pubkey and sent in the /ws hello.
func (id Identity) PublicKeyHex() string {
	if id.IsZero() {
		return ""
	}
	return hex.EncodeToString(id.priv[ed25519.SeedSize:])
}

// PrivateKey returns the ed25519 private key (a copy), for signing the /ws
// hello with crypto/ed25519.
func (id Identity) PrivateKey() ed25519.PrivateKey {
	if id.IsZero() {
		return nil
	}
	return append(ed25519.PrivateKey(nil), id.priv...)
}

// SecretKeyHex returns libsodium's 64-byte secret key (seed || public key) as
// 128 lowercase hex chars, the form ParseSecretKeyHex reads back and the
// TypeScript CLI stores. It is a secret: write it only to a 0600 file.
func (id Identity) SecretKeyHex() string {
	if id.IsZero() {
		return ""
	}
	return hex.EncodeToString(id.priv)
}

// X25519PublicKey returns the derived x25519 public key, the value that
// prefixes every topic-key seal this identity makes.
func (id Identity) X25519PublicKey() [X25519KeySize]byte { return id.xPub }

// String renders only the public key, so that logging an Identity with %v
// or %+v can never leak the secret.
func (id Identity) String() string {
	if id.IsZero() {
		return "meshcrypto.Identity{}"
	}
	return "meshcrypto.Identity{" + id.PublicKeyHex() + "}"
}

// GoString is String for %#v, which would otherwise print the private key.
func (id Identity) GoString() string { return id.String() }

// ParsePublicKeyHex parses a member public key as it appears on the wire and
// in the database: exactly 64 lowercase hex characters (uppercase is refused
// so that one key has one spelling, and lookups by text cannot miss), which
// must also convert to x25519 under libsodium's rules. A key that cannot
// convert could never receive a topic key or a direct message, and a
// small-order key would make signatures meaningless, so it is refused here
// rather than discovered later.
func ParsePublicKeyHex(s string) (ed25519.PublicKey, error) {
	pub, _, err := parsePublicKeyHex(s)
	return pub, err
}

// parsePublicKeyHex is ParsePublicKeyHex that also returns the x25519 key it
// had to compute anyway, so sealing does not convert twice.
func parsePublicKeyHex(s string) (ed25519.PublicKey, [X25519KeySize]byte, error) {
	var x [X25519KeySize]byte
	if len(s) != PublicKeyHexLen {
		return nil, x, fmt.Errorf("%w: %d characters, want %d lowercase hex", ErrInvalidPublicKey, len(s), PublicKeyHexLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, x, fmt.Errorf("%w: character %d is not lowercase hex", ErrInvalidPublicKey, i)
		}
	}
	b, _ := hex.DecodeString(s) // cannot fail: checked above
	x, err := Ed25519PublicKeyToX25519(b)
	if err != nil {
		return nil, x, err
	}
	return ed25519.PublicKey(b), x, nil
}

// FormatPublicKeyHex renders an ed25519 public key as 64 lowercase hex
// characters, the canonical text form ParsePublicKeyHex accepts.
func FormatPublicKeyHex(pub ed25519.PublicKey) string { return hex.EncodeToString(pub) }
