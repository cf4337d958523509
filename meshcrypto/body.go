package meshcrypto

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/nacl/secretbox"
)

// Message body versions as stored in messages.body_version.
const (
	// BodyV1 is base64 of the UTF-8 text: not encrypted, for unkeyed topics.
	BodyV1 = 1
	// BodyV2 is crypto_secretbox_easy under the topic key.
	BodyV2 = 2
)

// EncryptV2 encrypts a topic message body: ciphertextB64 is
// base64(crypto_secretbox_easy(plaintext, nonce, topicKey)), i.e. the 16-byte
// tag followed by the XSalsa20 ciphertext, and nonceB64 is base64 of 24 fresh
// random bytes.
func EncryptV2(topicKey [TopicKeySize]byte, plaintext []byte) (ciphertextB64, nonceB64 string, err error) {
	nonce, err := randomNonce()
	if err != nil {
		return "", "", err
	}
	ct, n := encryptV2WithNonce(topicKey, plaintext, nonce)
	return ct, n, nil
}

func encryptV2WithNonce(topicKey [TopicKeySize]byte, plaintext []byte, nonce *[NonceSize]byte) (string, string) {
	ct := secretbox.Seal(nil, plaintext, nonce, &topicKey)
	return encodeB64(ct), encodeB64(nonce[:])
}

// DecryptV2 opens a v2 body made by EncryptV2 or by libsodium's
// crypto_secretbox_easy. Any flipped bit, or the wrong topic key (e.g. one
// from before a rotation), yields ErrDecrypt.
func DecryptV2(topicKey [TopicKeySize]byte, ciphertextB64, nonceB64 string) ([]byte, error) {
	nonce, err := decodeNonce(nonceB64)
	if err != nil {
		return nil, err
	}
	ct, err := decodeB64("ciphertext", ciphertextB64)
	if err != nil {
		return nil, err
	}
	if len(ct) < Overhead {
		return nil, fmt.Errorf("%w: ciphertext shorter than the %d-byte tag", ErrMalformed, Overhead)
	}
	msg, ok := secretbox.Open(nil, ct, nonce, &topicKey)
	if !ok {
		return nil, ErrDecrypt
	}
	return msg, nil
}

// ValidCiphertext is the broker's shape check for a v2 body or a direct
// message, which it cannot open: canonical standard base64 on both fields, a
// nonce of exactly 24 bytes and a ciphertext at least as long as the 16-byte
// tag. Anything else could never decrypt, so storing it would only hand
// every reader an error.
func ValidCiphertext(ciphertextB64, nonceB64 string) error {
	if _, err := decodeNonce(nonceB64); err != nil {
		return err
	}
	ct, err := decodeB64("ciphertext", ciphertextB64)
	if err != nil {
		return err
	}
	if len(ct) < Overhead {
		return fmt.Errorf("%w: ciphertext: %d bytes, shorter than the %d-byte tag", ErrMalformed, len(ct), Overhead)
	}
	return nil
}

// EncodeV1 renders a v1 (plaintext) body: standard base64 of the UTF-8
// bytes. Invalid UTF-8 in text is replaced by U+FFFD first, as JavaScript's
// TextEncoder does with lone surrogates, so the body is always UTF-8 and
// DecodeV1 (and the TypeScript clients) can read it back.
func EncodeV1(text string) string {
	return encodeB64([]byte(strings.ToValidUTF8(text, "\uFFFD")))
}

// DecodeV1 reads a v1 body back to text. It refuses bodies that are not
// UTF-8, because the broker's mention extraction and every client assume
// text.
func DecodeV1(bodyB64 string) (string, error) {
	b, err := decodeB64("ciphertext", bodyB64)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%w: v1 body is not UTF-8", ErrMalformed)
	}
	return string(b), nil
}
