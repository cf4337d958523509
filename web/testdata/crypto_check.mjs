// crypto_check.mjs — runs the dashboard's own crypto module (static/assets/
// crypto.js on the vendored libsodium) against values made by Go's
// meshcrypto; web/crypto_test.go checks the answers with meshcrypto. Reads
// one JSON object on stdin, writes one on stdout.
import * as cx from "../static/assets/crypto.js";

let raw = "";
for await (const chunk of process.stdin) raw += chunk;
const input = JSON.parse(raw);
await cx.ready;
const sodiumHex = (hex) => Uint8Array.from(hex.match(/../g).map((b) => parseInt(b, 16)));
const browser = { pubkey: input.browserPub, secretKey: sodiumHex(input.browserSecret) };

const key = cx.openTopicKey(input.goSeal, input.goSealNonce, browser);
const goText = cx.decryptV2(input.goBody, input.goBodyNonce, key);
const seal = cx.sealTopicKey(key, browser, input.goPub);
const body = cx.encryptV2(input.jsText, key);
const fresh = cx.newIdentity();
process.stdout.write(JSON.stringify({
  topicKey: cx.toHex(key), goText, seal: seal.encryptedKey, sealNonce: seal.nonce, body: body.ciphertext, bodyNonce: body.nonce,
  v1: cx.decodeV1(input.v1), freshPub: fresh.pubkey, freshSecret: cx.toHex(fresh.secretKey),
}));
