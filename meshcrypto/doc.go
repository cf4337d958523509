// Package meshcrypto is the libsodium-compatible cryptography of claudemesh
// (SPEC §9). It exists so that the Go CLI and the tests produce and open
// exactly the bytes that the upstream TypeScript clients (which use
// libsodium-wrappers) produce and open; the broker itself only calls the
// Valid* shape checks, because it never holds a key that opens a message.
//
// The wire formats, all text fields standard base64 with padding:
//
//   - Identity: an ed25519 key pair; the public key travels as 64 lowercase
//     hex characters (the members.peer_pubkey column).
//   - x25519 keys are derived from the ed25519 identity exactly as libsodium's
//     crypto_sign_ed25519_pk_to_curve25519 / crypto_sign_ed25519_sk_to_curve25519
//     do, so one identity serves both signing (the /ws hello) and encryption.
//   - Topic key: 32 random bytes, shared by every member of a topic.
//   - Sealed topic key (topic_member_keys.encrypted_key, seed 003):
//     base64(sender_x25519_pub(32) || crypto_box_easy(topic_key)) = 80 bytes,
//     with a separate base64 24-byte nonce. The inline sender key lets a
//     re-sealed copy from any member open the same way as the creator's copy.
//   - v2 message body: base64(crypto_secretbox_easy(plaintext, nonce, topic_key))
//     with a base64 24-byte nonce. v1 body: base64 of the UTF-8 text, no
//     encryption (legacy, refused by the broker on keyed topics).
//   - Direct message: base64(crypto_box_easy(plaintext, nonce, recipient_x25519,
//     sender_x25519_sec)) with a base64 24-byte nonce; the sender's ed25519
//     key travels in the envelope metadata, not in the ciphertext.
//
// crypto_box_easy and crypto_secretbox_easy put the 16-byte Poly1305 tag
// before the ciphertext, which is the layout golang.org/x/crypto/nacl/box and
// nacl/secretbox use; testdata/vectors.json (made by libsodium 1.0.22 through
// libsodium-wrappers 0.8.4) pins that compatibility byte for byte, and
// TestGoOutputsOpenWithLibsodium checks the other direction with node.
//
// Decoding is strict on purpose: base64 must be canonical standard base64
// (padding required, no line breaks, no stray bits) so that each byte string
// has exactly one accepted text form on the wire and in the database.
package meshcrypto
