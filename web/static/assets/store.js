// store.js — what this browser keeps in IndexedDB, and only there: the
// ed25519 keypair per mesh membership. WebCrypto's non-extractable Ed25519
// keys cannot yield the x25519 secret crypto_box needs, so the libsodium
// secret key is stored as bytes in IndexedDB, never in localStorage,
// cookies or on the server.
//
// Version 1 also kept the API keys of invite joins that were not linked to
// the user account; joins are linked now (docs/DESIGN.md, "Dashboard"), so
// version 2 drops that store and the keys in it.
const DB = "claudemesh", VERSION = 2;
let dbp;

function open() {
  dbp ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains("identities")) db.createObjectStore("identities");
      if (db.objectStoreNames.contains("memberships")) db.deleteObjectStore("memberships");
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return dbp;
}

async function tx(store, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const req = fn(t.objectStore(store));
    t.oncomplete = () => resolve(req?.result);
    t.onerror = () => reject(t.error);
  });
}

const idKey = (userId, meshId, memberId) => `${userId}:${meshId}:${memberId}`;
export const getIdentity = (userId, meshId, memberId) => tx("identities", "readonly", (s) => s.get(idKey(userId, meshId, memberId)));
export const putIdentity = (userId, meshId, memberId, identity) =>
  tx("identities", "readwrite", (s) => s.put(identity, idKey(userId, meshId, memberId)));
