// store.js — what this browser keeps in IndexedDB, and only there:
// - identities: the ed25519 keypair per mesh membership. WebCrypto's
//   non-extractable Ed25519 keys cannot yield the x25519 secret crypto_box
//   needs, so the libsodium secret key is stored as bytes in IndexedDB,
//   never in localStorage, cookies or on the server.
// - memberships: meshes joined with an invite whose member is not linked to
//   the user account (today's POST /v1/join); they carry the member API key
//   the join returned. See docs/DESIGN.md ("Dashboard").
const DB = "claudemesh", VERSION = 1;
let dbp;

function open() {
  dbp ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, VERSION);
    req.onupgradeneeded = () => {
      req.result.createObjectStore("identities");
      req.result.createObjectStore("memberships");
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

export const putMembership = (userId, m) => tx("memberships", "readwrite", (s) => s.put(m, `${userId}:${m.meshId}`));
export const deleteMembership = (userId, meshId) => tx("memberships", "readwrite", (s) => s.delete(`${userId}:${meshId}`));
export async function listMemberships(userId) {
  const all = await tx("memberships", "readonly", (s) => s.getAll());
  return (all || []).filter((m) => m.userId === userId);
}
