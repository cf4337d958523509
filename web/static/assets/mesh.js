// mesh.js — one mesh as this browser sees it: the member credential (a
// short-lived member session, or the API key of an unlinked invite join),
// the browser's identity for that member, topic keys, the re-seal duty and
// the live /stream connection.
import { ApiError, auth, request, userCall } from "./api.js";
import * as cx from "./crypto.js";
import * as store from "./store.js";

// RESEAL_MS is the CLI's re-seal period (SPEC §10). A developer (or the
// browser test) may shorten it with localStorage "claudemesh.resealSeconds";
// the topic header then says so, so it is never changed silently.
export function resealMs() {
  const v = Number(localStorage.getItem("claudemesh.resealSeconds"));
  return v >= 1 && v <= 300 ? v * 1000 : 30000;
}
export const resealOverridden = () => resealMs() !== 30000;

const enc = encodeURIComponent;

export class MeshCtx {
  // m: {meshId, meshName, meshSlug, memberId, displayName, role, apiKey?}
  constructor(m) {
    this.m = m;
    this.id = m.meshId;
    this.session = null;
    this.identity = null;
    this.keys = new Map(); // topic name → Uint8Array
    this.listeners = new Map();
    this.live = { state: "idle", es: null, lastSeq: 0, reason: "", retry: 0, timer: 0 };
    this.peers = new Map(); // sessionId → Peer
    this.unreadNotifications = 0;
    this.ended = false;
  }

  get isAdmin() {
    return this.m.role === "admin";
  }

  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.listeners.get(type).delete(fn);
  }

  emit(type, data) {
    for (const fn of this.listeners.get(type) || []) fn(data);
  }

  // token is the member bearer for this mesh.
  async token() {
    if (this.m.apiKey) return this.m.apiKey;
    if (!this.session || Date.now() > this.session.exp - 120000) {
      const s = await userCall("POST", `/v1/meshes/${enc(this.id)}/session`, {});
      this.session = { token: s.token, exp: new Date(s.expiresAt).getTime() };
    }
    return this.session.token;
  }

  async call(method, path, body) {
    if (this.ended) throw new ApiError(401, { code: "stream_ended", detail: "this mesh is no longer available to you" });
    try {
      return await request(method, path, { token: await this.token(), body });
    } catch (e) {
      if (e.status !== 401 || this.m.apiKey) throw e;
      this.session = null; // the session expired early (e.g. clock skew): mint one more
      return request(method, path, { token: await this.token(), body });
    }
  }

  async list(path, max = 1000) {
    const items = [];
    let cursor = null;
    do {
      const sep = path.includes("?") ? "&" : "?";
      const page = await this.call("GET", `${path}${sep}limit=200${cursor ? `&cursor=${enc(cursor)}` : ""}`);
      items.push(...page.items);
      cursor = page.hasMore ? page.nextCursor : null;
    } while (cursor && items.length < max);
    return items;
  }

  // init loads this browser's identity for the member, creating and
  // registering one when needed: a mesh owner's member starts with a
  // server-made key whose secret nobody holds.
  async init() {
    await cx.ready;
    const uid = auth.user.id;
    this.identity = await store.getIdentity(uid, this.id, this.m.memberId);
    const members = await this.list("/v1/members");
    this.members = members;
    const me = members.find((x) => x.id === this.m.memberId);
    if (!this.identity) {
      if (this.m.apiKey) throw new Error("This browser lost the identity key of this membership; join again with a new invite.");
      this.identity = cx.newIdentity();
      await store.putIdentity(uid, this.id, this.m.memberId, this.identity);
    }
    if (me && me.pubkey !== this.identity.pubkey && !this.m.apiKey) {
      await this.call("POST", "/v1/me/peer-pubkey", { pubkey: this.identity.pubkey });
    }
    const unread = await this.call("GET", "/v1/notifications?unread=true&limit=200");
    this.unreadNotifications = unread.items.length;
  }

  // keyState answers the topic key, or why there is none:
  // "unkeyed" (the first post keys it), "not-member", "waiting".
  async keyState(topic) {
    if (this.keys.has(topic.name)) return this.keys.get(topic.name);
    if (!topic.keyed) return "unkeyed";
    if (!topic.joined) return "not-member";
    // Ask whether we are still waiting first, so the normal case makes no
    // failing request.
    const pending = await this.list(`/v1/topics/${enc(topic.name)}/pending-seals`);
    if (pending.some((p) => p.memberId === this.m.memberId)) return "waiting";
    try {
      const seal = await this.call("GET", `/v1/topics/${enc(topic.name)}/key`);
      const key = cx.openTopicKey(seal.encryptedKey, seal.nonce, this.identity);
      this.keys.set(topic.name, key);
      return key;
    } catch (e) {
      if (e.code === "seal_not_found") return "waiting";
      throw e;
    }
  }

  // claimKey keys an unkeyed topic with a fresh key sealed to ourselves.
  async claimKey(topic) {
    const key = cx.newTopicKey();
    const seal = cx.sealTopicKey(key, this.identity, this.identity.pubkey);
    try {
      await this.call("POST", `/v1/topics/${enc(topic.name)}/claim-key`, seal);
      this.keys.set(topic.name, key);
      topic.keyed = true;
      return key;
    } catch (e) {
      if (e.code !== "topic_already_keyed") throw e;
      topic.keyed = true; // someone was first: use theirs once it is sealed to us
      return this.keyState(topic);
    }
  }

  // reseal seals the topic key for every topic member still waiting; the
  // same duty the CLI's `topic tail` runs every 30 s. Answers how many.
  async reseal(topicName) {
    const key = this.keys.get(topicName);
    if (!(key instanceof Uint8Array)) return 0;
    let n = 0;
    for (const p of await this.list(`/v1/topics/${enc(topicName)}/pending-seals`)) {
      if (p.memberId === this.m.memberId) continue;
      try {
        await this.call("POST", `/v1/topics/${enc(topicName)}/seal`, { memberId: p.memberId, ...cx.sealTopicKey(key, this.identity, p.pubkey) });
        n++;
      } catch (e) {
        if (!["seal_exists", "unusable_pubkey", "validation_failed"].includes(e.code)) throw e;
      }
    }
    return n;
  }

  decrypt(msg, key) {
    if (msg.bodyVersion === 1) return { text: cx.decodeV1(msg.ciphertext), plain: true };
    if (!(key instanceof Uint8Array)) return { locked: true };
    try {
      return { text: cx.decryptV2(msg.ciphertext, msg.nonce, key) };
    } catch {
      return { broken: true };
    }
  }

  async post(topic, text) {
    let key = await this.keyState(topic);
    if (key === "unkeyed") key = await this.claimKey(topic);
    if (!(key instanceof Uint8Array)) throw new Error("This topic's key has not been shared with you yet.");
    const mentions = [...new Set([...text.matchAll(/(?:^|[^A-Za-z0-9_-])@([A-Za-z0-9][A-Za-z0-9_-]{0,63})/g)].map((m) => m[1].toLowerCase()))].slice(0, 16);
    const body = { topic: topic.name, bodyVersion: 2, ...cx.encryptV2(text, key), clientMessageId: `web-${cx.randomId()}` };
    if (mentions.length) body.mentions = mentions;
    return this.call("POST", "/v1/messages", body);
  }

  // ---- live: /stream?token= (5-minute token), resumed with ?since= ----
  startLive() {
    if (this.live.es || this.ended) return;
    this.connect();
  }

  setLive(state, reason = "") {
    this.live.state = state;
    this.live.reason = reason;
    this.emit("live", this.live);
  }

  async connect() {
    clearTimeout(this.live.timer);
    this.setLive("connecting");
    let tok;
    try {
      tok = await this.call("POST", "/v1/stream/token");
    } catch (e) {
      if (e.status === 401 || e.status === 403 || e.status === 404) return this.endForGood(e.message);
      return this.retryLater();
    }
    const q = new URLSearchParams({ token: tok.token });
    if (this.live.lastSeq) q.set("since", String(this.live.lastSeq));
    const es = new EventSource(`/stream?${q}`);
    this.live.es = es;
    es.addEventListener("ready", (ev) => {
      const r = JSON.parse(ev.data);
      if (!this.live.lastSeq) this.live.lastSeq = r.lastSeq;
      this.live.retry = 0;
      this.setLive("live");
    });
    es.addEventListener("message", (ev) => {
      const msg = JSON.parse(ev.data);
      this.live.lastSeq = Math.max(this.live.lastSeq, msg.seq);
      this.emit("message", msg);
    });
    es.addEventListener("notification", (ev) => {
      this.unreadNotifications++;
      this.emit("notification", JSON.parse(ev.data));
    });
    es.addEventListener("presence", (ev) => {
      const p = JSON.parse(ev.data);
      if (p.disconnectedAt) this.peers.delete(p.sessionId);
      else this.peers.set(p.sessionId, p);
      this.emit("presence", p);
    });
    es.addEventListener("end", (ev) => {
      const reason = JSON.parse(ev.data || "{}").reason || "the broker ended the stream";
      this.closeES();
      // Expired credentials and restarts reconnect; a revocation is final.
      if (/revoked|archived|access/i.test(reason)) this.endForGood(reason);
      else {
        this.session = null;
        this.retryLater();
      }
    });
    es.onerror = () => {
      if (this.live.es !== es) return;
      this.closeES();
      this.retryLater();
    };
  }

  closeES() {
    this.live.es?.close();
    this.live.es = null;
  }

  retryLater() {
    if (this.ended) return;
    const wait = Math.min(30000, 1000 * 2 ** this.live.retry++);
    this.setLive("reconnecting");
    this.live.timer = setTimeout(() => this.connect(), wait);
  }

  endForGood(reason) {
    this.closeES();
    this.ended = true;
    // A revoked invite-join membership is of no further use in this browser.
    if (this.m.apiKey && /revoked/i.test(reason)) store.deleteMembership(auth.user.id, this.id).catch(() => {});
    clearTimeout(this.live.timer);
    this.setLive("ended", reason);
  }

  stopLive() {
    clearTimeout(this.live.timer);
    this.closeES();
    if (!this.ended) this.setLive("idle");
  }
}
