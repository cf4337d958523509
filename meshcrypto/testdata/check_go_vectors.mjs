// check_go_vectors.mjs <file.json> — opens Go-made outputs with libsodium.
//
// TestGoOutputsOpenWithLibsodium writes the JSON (identities by seed, and
// seals, v2 bodies and direct messages made by the Go package with random
// nonces) and runs this script; it is the Go→libsodium half of SPEC §9's
// "checked both ways". Exit status 0 means every check passed; otherwise each
// failure is printed to stderr and the status is 1.

import { readFileSync } from 'node:fs';
import _sodium from 'libsodium-wrappers';

await _sodium.ready;
const sodium = _sodium;
const fromB64 = (s) => sodium.from_base64(s, sodium.base64_variants.ORIGINAL);
const toB64 = (b) => sodium.to_base64(b, sodium.base64_variants.ORIGINAL);
const hex = (b) => sodium.to_hex(b);

const input = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const failures = [];
let checks = 0;
function check(label, fn) {
  checks++;
  try {
    const err = fn();
    if (err) failures.push(`${label}: ${err}`);
  } catch (e) {
    failures.push(`${label}: threw ${e && e.message ? e.message : e}`);
  }
}
function mustFail(label, fn) {
  checks++;
  try { fn(); failures.push(`${label}: libsodium accepted a tampered input`); } catch { /* expected */ }
}
function flipped(b, i) { const c = Uint8Array.from(b); c[i] ^= 0x01; return c; }

const ids = {};
for (const id of input.identities) {
  const kp = sodium.crypto_sign_seed_keypair(sodium.from_hex(id.seed));
  ids[id.name] = {
    kp,
    xpk: sodium.crypto_sign_ed25519_pk_to_curve25519(kp.publicKey),
    xsk: sodium.crypto_sign_ed25519_sk_to_curve25519(kp.privateKey),
  };
  check(`identity ${id.name}: ed25519 pk`, () => hex(kp.publicKey) === id.ed25519_pk ? null : `Go ${id.ed25519_pk}, libsodium ${hex(kp.publicKey)}`);
  check(`identity ${id.name}: ed25519 sk`, () => hex(kp.privateKey) === id.ed25519_sk ? null : 'secret key layout differs');
  check(`identity ${id.name}: x25519 pk`, () => hex(ids[id.name].xpk) === id.x25519_pk ? null : `Go ${id.x25519_pk}, libsodium ${hex(ids[id.name].xpk)}`);
}

for (const [i, s] of input.seals.entries()) {
  const label = `seal ${i} ${s.sender}→${s.recipient}`;
  const blob = fromB64(s.encrypted_key);
  const nonce = fromB64(s.nonce);
  check(label + ': layout', () => (blob.length === 80 && nonce.length === 24 ? null : `blob ${blob.length} bytes, nonce ${nonce.length}`));
  check(label + ': sender prefix', () => (hex(blob.slice(0, 32)) === hex(ids[s.sender].xpk) ? null : 'prefix is not the sender x25519 key'));
  check(label + ': open', () => {
    const key = sodium.crypto_box_open_easy(blob.slice(32), nonce, blob.slice(0, 32), ids[s.recipient].xsk);
    return hex(key) === s.topic_key ? null : 'wrong topic key';
  });
  check(label + ': same bytes as crypto_box_easy', () => {
    const box = sodium.crypto_box_easy(sodium.from_hex(s.topic_key), nonce, ids[s.recipient].xpk, ids[s.sender].xsk);
    return toB64(blob.slice(32)) === toB64(box) ? null : 'ciphertext differs';
  });
  mustFail(label + ': tampered', () => sodium.crypto_box_open_easy(flipped(blob, 40).slice(32), nonce, blob.slice(0, 32), ids[s.recipient].xsk));
}

for (const [i, v] of input.v2.entries()) {
  const label = `v2 ${i}`;
  const ct = fromB64(v.ciphertext);
  const nonce = fromB64(v.nonce);
  const key = sodium.from_hex(v.topic_key);
  check(label + ': open', () => {
    const pt = sodium.crypto_secretbox_open_easy(ct, nonce, key);
    return hex(pt) === v.plaintext_hex ? null : 'wrong plaintext';
  });
  mustFail(label + ': tampered', () => sodium.crypto_secretbox_open_easy(flipped(ct, ct.length - 1), nonce, key));
}

for (const [i, d] of input.direct.entries()) {
  const label = `direct ${i} ${d.sender}→${d.recipient}`;
  const ct = fromB64(d.ciphertext);
  const nonce = fromB64(d.nonce);
  check(label + ': open', () => {
    const pt = sodium.crypto_box_open_easy(ct, nonce, ids[d.sender].xpk, ids[d.recipient].xsk);
    return hex(pt) === d.plaintext_hex ? null : 'wrong plaintext';
  });
  mustFail(label + ': tampered', () => sodium.crypto_box_open_easy(flipped(ct, 0), nonce, ids[d.sender].xpk, ids[d.recipient].xsk));
}

for (const [i, v] of (input.v1 || []).entries()) {
  check(`v1 ${i}`, () => (sodium.to_string(fromB64(v.body)) === v.text ? null : 'wrong text'));
}

if (failures.length > 0) {
  for (const f of failures) console.error('FAIL ' + f);
  console.error(`${failures.length} of ${checks} checks failed (libsodium ${sodium.sodium_version_string()})`);
  process.exit(1);
}
console.log(`ok: ${checks} checks passed with libsodium ${sodium.sodium_version_string()}`);
