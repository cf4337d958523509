// crypto.js — the dashboard's end-to-end crypto, byte-compatible with the
// Go meshcrypto package (SPEC §9), on the vendored libsodium-wrappers.
import sodium from "./vendor/libsodium-wrappers.mjs";

export const ready = sodium.ready;
const B64 = () => sodium.base64_variants.ORIGINAL;

export const toB64 = (u8) => sodium.to_base64(u8, B64());
export const fromB64 = (s) => sodium.from_base64(s, B64());
export const toHex = (u8) => sodium.to_hex(u8);

// newIdentity makes an ed25519 keypair; the secret never leaves this
// browser (it is kept in IndexedDB only, see store.js).
export function newIdentity() {
  const kp = sodium.crypto_sign_keypair();
  return { pubkey: sodium.to_hex(kp.publicKey), secretKey: kp.privateKey };
}

function xKeys(identity) {
  return {
    pub: sodium.crypto_sign_ed25519_pk_to_curve25519(sodium.from_hex(identity.pubkey)),
    sec: sodium.crypto_sign_ed25519_sk_to_curve25519(identity.secretKey),
  };
}

export const newTopicKey = () => sodium.randombytes_buf(32);

// sealTopicKey: base64(sender_x25519_pub(32) || crypto_box_easy(topicKey,
// nonce, recipient_x25519_pub, sender_x25519_sec)), nonce base64(24 bytes).
export function sealTopicKey(topicKey, sender, recipientPubkeyHex) {
  const x = xKeys(sender);
  const rx = sodium.crypto_sign_ed25519_pk_to_curve25519(sodium.from_hex(recipientPubkeyHex));
  const nonce = sodium.randombytes_buf(sodium.crypto_box_NONCEBYTES);
  const box = sodium.crypto_box_easy(topicKey, nonce, rx, x.sec);
  const out = new Uint8Array(32 + box.length);
  out.set(x.pub, 0);
  out.set(box, 32);
  return { encryptedKey: toB64(out), nonce: toB64(nonce) };
}

// openTopicKey opens a seal made for identity; throws when it does not open.
export function openTopicKey(encryptedKeyB64, nonceB64, identity) {
  const blob = fromB64(encryptedKeyB64);
  if (blob.length !== 80) throw new Error("malformed seal");
  const key = sodium.crypto_box_open_easy(blob.subarray(32), fromB64(nonceB64), blob.subarray(0, 32), xKeys(identity).sec);
  if (key.length !== 32) throw new Error("malformed topic key");
  return key;
}

// sealSenderHex is the sealer's x25519 public key (hex) at the head of a
// seal: what the broker reports as a topic's keyPubkey after a claim.
export const sealSenderHex = (encryptedKeyB64) => toHex(fromB64(encryptedKeyB64).subarray(0, 32));

// encryptV2 is a v2 body: base64(crypto_secretbox_easy(utf8, nonce, key)).
export function encryptV2(text, topicKey) {
  const nonce = sodium.randombytes_buf(sodium.crypto_secretbox_NONCEBYTES);
  const ct = sodium.crypto_secretbox_easy(sodium.from_string(text), nonce, topicKey);
  return { ciphertext: toB64(ct), nonce: toB64(nonce) };
}

export function decryptV2(ciphertextB64, nonceB64, topicKey) {
  return sodium.to_string(sodium.crypto_secretbox_open_easy(fromB64(ciphertextB64), fromB64(nonceB64), topicKey));
}

// decodeV1 reads a legacy v1 body (base64 of UTF-8 text, not encrypted).
export const decodeV1 = (b64) => sodium.to_string(fromB64(b64));

export const randomId = () => sodium.to_hex(sodium.randombytes_buf(12));
