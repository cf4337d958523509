package meshcrypto

import (
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	// HSalsa20 (crypto_box's key derivation) is only exported by this
	// low-level package; libsodium compatibility needs exactly it.
	"golang.org/x/crypto/salsa20/salsa" //nolint:staticcheck // SA1019: see above
)

// randomNonce returns 24 bytes from crypto/rand. XSalsa20's nonce is long
// enough that random nonces never collide in practice, so no counter state
// has to be kept across CLI runs.
func randomNonce() (*[NonceSize]byte, error) {
	var n [NonceSize]byte
	if _, err := rand.Read(n[:]); err != nil {
		return nil, fmt.Errorf("meshcrypto: reading randomness: %w", err)
	}
	return &n, nil
}

// boxKey is libsodium's crypto_box_beforenm: X25519 then HSalsa20 with a
// zero nonce. It refuses exactly what libsodium refuses: a peer key on the
// small-order blacklist, or an all-zero shared secret. x/crypto's
// box.Precompute performs the same computation but silently accepts weak
// keys, which is why the check is done here and the bytes checked against
// box.Precompute in the tests.
func boxKey(peer, sec *[X25519KeySize]byte) (*[32]byte, error) {
	if x25519HasSmallOrder(peer) {
		return nil, fmt.Errorf("%w: small-order point", ErrWeakX25519Key)
	}
	shared, err := curve25519.X25519(sec[:], peer[:])
	if err != nil { // all-zero output
		return nil, fmt.Errorf("%w: %w", ErrWeakX25519Key, err)
	}
	var zero [16]byte
	var k [32]byte
	salsa.HSalsa20(&k, &zero, (*[32]byte)(shared), &salsa.Sigma)
	clear(shared)
	return &k, nil
}

// boxSeal is crypto_box_easy: tag(16) || XSalsa20 ciphertext, appended to out.
func boxSeal(out, msg []byte, nonce *[NonceSize]byte, peer, sec *[X25519KeySize]byte) ([]byte, error) {
	k, err := boxKey(peer, sec)
	if err != nil {
		return nil, err
	}
	defer clear(k[:])
	return box.SealAfterPrecomputation(out, msg, nonce, k), nil
}

// boxOpen is crypto_box_open_easy.
func boxOpen(sealed []byte, nonce *[NonceSize]byte, peer, sec *[X25519KeySize]byte) ([]byte, error) {
	k, err := boxKey(peer, sec)
	if err != nil {
		return nil, err
	}
	defer clear(k[:])
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: ciphertext shorter than the %d-byte tag", ErrMalformed, Overhead)
	}
	msg, ok := box.OpenAfterPrecomputation(nil, sealed, nonce, k)
	if !ok {
		return nil, ErrDecrypt
	}
	return msg, nil
}

// SealDirect encrypts a direct message from sender to the member whose
// ed25519 public key is recipientEd25519PubHex, as
// crypto_box_easy(plaintext, nonce, recipient_x25519, sender_x25519_sec).
// Both results are standard base64; the nonce is 24 fresh random bytes. The
// recipient needs the sender's ed25519 key (from the envelope) to open it.
func SealDirect(plaintext []byte, sender Identity, recipientEd25519PubHex string) (ciphertextB64, nonceB64 string, err error) {
	nonce, err := randomNonce()
	if err != nil {
		return "", "", err
	}
	return sealDirectWithNonce(plaintext, sender, recipientEd25519PubHex, nonce)
}

func sealDirectWithNonce(plaintext []byte, sender Identity, recipientHex string, nonce *[NonceSize]byte) (string, string, error) {
	if sender.IsZero() {
		return "", "", ErrNoIdentity
	}
	_, rx, err := parsePublicKeyHex(recipientHex)
	if err != nil {
		return "", "", err
	}
	ct, err := boxSeal(nil, plaintext, nonce, &rx, &sender.xSec)
	if err != nil {
		return "", "", err
	}
	return encodeB64(ct), encodeB64(nonce[:]), nil
}

// OpenDirect decrypts a direct message sent to recipient by the member whose
// ed25519 public key is senderEd25519PubHex. A wrong sender, wrong
// recipient, or any flipped bit yields ErrDecrypt, which also authenticates
// the sender: only the holder of that key could have made the box.
func OpenDirect(ciphertextB64, nonceB64 string, recipient Identity, senderEd25519PubHex string) ([]byte, error) {
	if recipient.IsZero() {
		return nil, ErrNoIdentity
	}
	_, sx, err := parsePublicKeyHex(senderEd25519PubHex)
	if err != nil {
		return nil, err
	}
	nonce, err := decodeNonce(nonceB64)
	if err != nil {
		return nil, err
	}
	ct, err := decodeB64("ciphertext", ciphertextB64)
	if err != nil {
		return nil, err
	}
	return boxOpen(ct, nonce, &sx, &recipient.xSec)
}
