// gen_vectors.mjs — writes vectors.json next to this file, using libsodium
// itself (through the pinned npm libsodium-wrappers) so that the Go package is
// checked against the reference implementation, not against its own idea of
// it. Every input is derived deterministically (BLAKE2b of a label), so
// re-running with the same libsodium reproduces vectors.json byte for byte.
//
//   cd meshcrypto/testdata && npm ci --no-audit --no-fund && node gen_vectors.mjs
//
// The Go tests read vectors.json and need no node.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import _sodium from 'libsodium-wrappers';

await _sodium.ready;
const sodium = _sodium;
const here = dirname(fileURLToPath(import.meta.url));
const wrappersVersion = JSON.parse(
  readFileSync(join(here, 'node_modules', 'libsodium-wrappers', 'package.json'), 'utf8'),
).version;

const hex = (b) => sodium.to_hex(b);
const unhex = (s) => sodium.from_hex(s);
const b64 = (b) => sodium.to_base64(b, sodium.base64_variants.ORIGINAL);
const utf8 = (s) => sodium.from_string(s);
// derive(label, n): n deterministic pseudo-random bytes.
const derive = (label, n = 32) => sodium.crypto_generichash(n, utf8('claudemesh-go meshcrypto vectors: ' + label));

// ---- identities: fixed seeds → ed25519 and x25519 key pairs -------------
const names = ['alice', 'bob', 'carol'];
const ids = {};
const identities = names.map((name) => {
  const seed = derive('seed ' + name);
  const kp = sodium.crypto_sign_seed_keypair(seed);
  const xpk = sodium.crypto_sign_ed25519_pk_to_curve25519(kp.publicKey);
  const xsk = sodium.crypto_sign_ed25519_sk_to_curve25519(kp.privateKey);
  ids[name] = { kp, xpk, xsk };
  return {
    name,
    seed: hex(seed),
    ed25519_pk: hex(kp.publicKey),
    ed25519_sk: hex(kp.privateKey),
    x25519_pk: hex(xpk),
    x25519_sk: hex(xsk),
    x25519_pk_from_sk: hex(sodium.crypto_scalarmult_base(xsk)),
  };
});

// ---- crypto_sign_ed25519_pk_to_curve25519 on good and hostile inputs ----
// Field arithmetic in BigInt, only to *build* hostile encodings (mixed-order
// points, non-canonical y); whether each is accepted is libsodium's call.
const P = 2n ** 255n - 19n;
const D = mod(-121665n * inv(121666n));
const SQRT_M1 = pow(2n, (P - 1n) / 4n);
function mod(a) { return ((a % P) + P) % P; }
function pow(b, e) { let r = 1n; b = mod(b); while (e > 0n) { if (e & 1n) r = (r * b) % P; b = (b * b) % P; e >>= 1n; } return r; }
function inv(a) { return pow(a, P - 2n); }
function leToBig(b) { let x = 0n; for (let i = b.length - 1; i >= 0; i--) x = (x << 8n) | BigInt(b[i]); return x; }
function bigToLe(x) { const b = new Uint8Array(32); for (let i = 0; i < 32; i++) { b[i] = Number(x & 0xffn); x >>= 8n; } return b; }
function encode(x, y) { const b = bigToLe(mod(y)); b[31] |= Number(mod(x) & 1n) << 7; return b; }
function decode(b) { // returns {x, y} or null, RFC 8032 style but lenient on y ≥ p
  const sign = BigInt(b[31] >> 7);
  const c = Uint8Array.from(b); c[31] &= 0x7f;
  const y = mod(leToBig(c));
  const u = mod(y * y - 1n), v = mod(D * y * y + 1n);
  const x2 = mod(u * inv(v));
  let x = pow(x2, (P + 3n) / 8n);
  if (mod(x * x - x2) !== 0n) x = mod(x * SQRT_M1);
  if (mod(x * x - x2) !== 0n) return null;
  if ((x & 1n) !== sign) x = mod(-x);
  return { x, y };
}

const pkCases = [];
function pkCase(label, bytes) {
  let ok = true, xpk = '';
  try { xpk = hex(sodium.crypto_sign_ed25519_pk_to_curve25519(bytes)); } catch { ok = false; }
  pkCases.push({ label, ed25519_pk: hex(bytes), ok, x25519_pk: xpk });
}
for (const name of names) pkCase('identity ' + name, ids[name].kp.publicKey);
for (let i = 0; i < 8; i++) pkCase('seed keypair ' + i, sodium.crypto_sign_seed_keypair(derive('extra seed ' + i)).publicKey);
for (let i = 0; i < 24; i++) pkCase('random bytes ' + i, derive('random pk ' + i));
// The eight small-order points: y = 1 (identity), y = -1 (order 2), y = 0
// with x = ±sqrt(-1) (order 4), and the four order-8 points.
const smallY = [1n, P - 1n, 0n];
{
  // An order-8 point has y² = 1/(1+sqrt(1+1/d))-style values; find them as
  // y of the points T with 2T = (±sqrt(-1), 0): y = ±sqrt of the root below.
  // Simplest: the order-8 y values are the roots of d*y^4 + 2*y^2 - 1 = 0,
  // i.e. y^2 = (-1 ± sqrt(1+d))/d.
  const s = pow(mod(1n + D), (P + 3n) / 8n);
  for (const r of [s, mod(s * SQRT_M1), mod(-s), mod(-s * SQRT_M1)]) {
    if (mod(r * r - mod(1n + D)) !== 0n) continue;
    const y2 = mod((-1n + r) * inv(D));
    let y = pow(y2, (P + 3n) / 8n);
    if (mod(y * y - y2) !== 0n) y = mod(y * SQRT_M1);
    if (mod(y * y - y2) !== 0n) continue;
    smallY.push(y, mod(-y));
  }
}
const yName = (y) => (y === 0n ? '0' : y === 1n ? '1' : y === P - 1n ? 'p-1' : y.toString(16).slice(0, 8) + '…');
for (const y of [...new Set(smallY)]) {
  for (const sign of [0, 1]) {
    const b = bigToLe(y); b[31] |= sign << 7;
    pkCase(`small order y=${yName(y)} sign=${sign}`, b);
  }
}
// Non-canonical y = p + k for k = 0..18 (the only 255-bit values ≥ p).
for (let k = 0n; k <= 18n; k++) {
  for (const sign of [0, 1]) {
    const b = bigToLe(P + k); b[31] |= sign << 7;
    pkCase(`non-canonical y=p+${k} sign=${sign}`, b);
  }
}
// Prime-order point plus a torsion point: P + T2 = (-x, -y) and
// P + T4 = (sqrt(-1)·y, sqrt(-1)·x). libsodium ≤ 1.0.20 accepted P + T2.
for (const name of names) {
  const { x, y } = decode(ids[name].kp.publicKey);
  pkCase(`${name} + order-2 point`, encode(mod(-x), mod(-y)));
  pkCase(`${name} + order-4 point`, encode(mod(SQRT_M1 * y), mod(SQRT_M1 * x)));
  const flipped = Uint8Array.from(ids[name].kp.publicKey); flipped[31] ^= 0x80;
  pkCase(`${name} negated (sign bit flipped)`, flipped);
}

// ---- which x25519 peer keys crypto_box_easy accepts ----------------------
const boxNonce = derive('box peer nonce', 24);
const boxMsg = utf8('peer key probe');
const boxCases = [];
function boxCase(label, pk) {
  let ok = true, ct = '';
  try { ct = b64(sodium.crypto_box_easy(boxMsg, boxNonce, pk, ids.alice.xsk)); } catch { ok = false; }
  boxCases.push({ label, x25519_pk: hex(pk), ok, ciphertext: ct });
}
// libsodium's x25519 has_small_order list, rebuilt here from its numbers.
const blacklist = [['0', 0n], ['1', 1n], ['p-1', P - 1n], ['p', P], ['p+1', P + 1n],
  ['order-8 a', 0x00b8495f16056286fdb1329ceb8d09da6ac49ff1fae35616aeb8413b7c7aebe0n],
  ['order-8 b', 0x57119fd0dd4e22d8868e1c58c45c44045bef839c55b1d0b1248c50a3bc959c5fn]];
for (const [name, u] of blacklist) {
  for (const top of [0, 1]) {
    const b = bigToLe(u); b[31] |= top << 7;
    boxCase(`small order u=${name} top=${top}`, b);
  }
}
for (const name of names) boxCase('identity ' + name, ids[name].xpk);
for (let i = 0; i < 8; i++) boxCase('random bytes ' + i, derive('random x25519 ' + i)); // about half on the twist
boxCase('u = 2', bigToLe(2n));
boxCase('u = p + 2 (non-canonical)', bigToLe(P + 2n));

// ---- seed-003 seals, v2 bodies, direct messages, v1 bodies --------------
function seal(sender, recipient, topicKey, label) {
  const nonce = derive('seal nonce ' + label, 24);
  const box = sodium.crypto_box_easy(topicKey, nonce, ids[recipient].xpk, ids[sender].xsk);
  const blob = new Uint8Array(32 + box.length);
  blob.set(ids[sender].xpk, 0); blob.set(box, 32);
  return { sender, recipient, topic_key: hex(topicKey), nonce: b64(nonce), encrypted_key: b64(blob) };
}
const topicKey = derive('topic key general');
const seals = [
  seal('alice', 'alice', topicKey, 'creator self-seal'),
  seal('alice', 'bob', topicKey, 'alice to bob'),
  seal('bob', 'carol', topicKey, 'bob re-seals for carol'),
  seal('carol', 'alice', derive('topic key deploys'), 'carol to alice'),
];

const texts = [
  '',
  'hello #general',
  'héllo wörld 🌍 — @bob, ship it?\nline two\ttabbed',
  JSON.stringify({ kind: 'status', body: 'x'.repeat(200) }),
];
const long = derive('long plaintext', 64);
const longText = hex(long).repeat(8); // 1024 bytes
const v2 = [...texts, longText].map((text, i) => {
  const key = derive('v2 key ' + (i % 2));
  const nonce = derive('v2 nonce ' + i, 24);
  const pt = utf8(text);
  return { topic_key: hex(key), plaintext_hex: hex(pt), nonce: b64(nonce), ciphertext: b64(sodium.crypto_secretbox_easy(pt, nonce, key)) };
});

const direct = [['alice', 'bob'], ['bob', 'alice'], ['carol', 'bob'], ['alice', 'alice']].map(([s, r], i) => {
  const nonce = derive('direct nonce ' + i, 24);
  const pt = utf8(texts[i % texts.length] + ` (${s}→${r})`);
  return { sender: s, recipient: r, plaintext_hex: hex(pt), nonce: b64(nonce), ciphertext: b64(sodium.crypto_box_easy(pt, nonce, ids[r].xpk, ids[s].xsk)) };
});

const v1 = texts.map((text) => ({ text, body: b64(utf8(text)) }));

const out = {
  comment: 'Generated by gen_vectors.mjs with libsodium; do not edit by hand. Read by vectors_test.go.',
  libsodium_wrappers: wrappersVersion,
  libsodium: sodium.sodium_version_string(),
  identities,
  pk_to_curve25519: pkCases,
  box_peer_keys: { sender: 'alice', nonce: b64(boxNonce), plaintext: 'peer key probe', cases: boxCases },
  seals,
  v2,
  direct,
  v1,
};
writeFileSync(join(here, 'vectors.json'), JSON.stringify(out, null, 2) + '\n');
console.log(`vectors.json: libsodium ${out.libsodium} (libsodium-wrappers ${wrappersVersion}), ` +
  `${pkCases.length} pk conversions, ${boxCases.length} box peer keys, ${seals.length} seals, ` +
  `${v2.length} v2, ${direct.length} direct, ${v1.length} v1`);
