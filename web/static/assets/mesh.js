// mesh.js — one mesh as this browser sees it: the member session, the
// browser's identity for that member, topic keys by key epoch, the re-seal
// duty and the live /stream connection.
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

// END_WORDS say why the broker ended a live stream (the fixed codes of
// `event: end`, see openapi.yaml /v1/topics/{name}/stream).
export const END_WORDS = {
  credential_expired: "Your session for this mesh expired.",
  credential_revoked: "Your membership of this mesh was revoked.",
  access_lost: "You no longer have access to what this page was following.",
  mesh_archived: "This mesh was archived. Its history is kept, but nobody can read or post any more.",
  topic_archived: "A topic this page was following was archived.",
  server_shutdown: "The server is restarting.",
  database_unavailable: "The server lost its connection to its database.",
  internal: "The server hit an internal error.",
  slow_consumer: "This page fell behind the live updates.",
};
export const endWords = (code) => END_WORDS[code] || (code ? `The server ended live updates (${code}).` : "The server ended live updates.");

export class MeshCtx {
  // m: a membership of GET /v1/me {meshId, meshName, meshSlug, memberId, displayName, role}
  constructor(m) {
    this.m = { ...m };
    this.id = m.meshId;
    this.session = null;
    this.identity = null;
    this.rings = new Map(); // topic name → Map(key epoch → Uint8Array)
    this.never = new Map(); // topic name → Set of older epochs whose key was never sealed for us
    this.keyVersion = 0; // bumped whenever a key is added, so views decrypt again
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

  // token is the member bearer for this mesh: a member session the user
  // mints for their own (linked) membership, renewed two minutes early.
  async token() {
    if (!this.session || Date.now() > this.session.exp - 120000) {
      const s = await userCall("POST", `/v1/meshes/${enc(this.id)}/session`, {});
      this.session = { token: s.token, exp: new Date(s.expiresAt).getTime(), memberId: s.memberId };
    }
    return this.session.token;
  }

  async call(method, path, body) {
    if (this.ended) throw new ApiError(401, { code: "stream_ended", detail: "this mesh is no longer available to you" });
    try {
      return await request(method, path, { token: await this.token(), body });
    } catch (e) {
      if (e.status !== 401) throw e;
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
    await this.token();
    // A user with several members in a mesh (the dashboard one and CLI
    // peers) gets sessions for the dashboard member: that is who we are.
    this.m.memberId = this.session.memberId;
    const uid = auth.user.id;
    const members = await this.list("/v1/members");
    this.members = members;
    const me = members.find((x) => x.id === this.m.memberId);
    if (me) Object.assign(this.m, { displayName: me.displayName, role: me.role });
    this.identity = await store.getIdentity(uid, this.id, this.m.memberId);
    if (!this.identity) {
      this.identity = cx.newIdentity();
      await store.putIdentity(uid, this.id, this.m.memberId, this.identity);
    }
    if (me && me.pubkey !== this.identity.pubkey) {
      await this.call("POST", "/v1/me/peer-pubkey", { pubkey: this.identity.pubkey });
    }
    const unread = await this.call("GET", "/v1/notifications?unread=true&limit=200");
    this.unreadNotifications = unread.items.length;
  }

  // ---- topic keys, one per (topic, key epoch) ----
  keyFor(topicName, epoch) {
    return this.rings.get(topicName)?.get(epoch) || null;
  }

  addKey(topicName, epoch, key) {
    if (!this.rings.has(topicName)) this.rings.set(topicName, new Map());
    this.rings.get(topicName).set(epoch, key);
    this.keyVersion++;
  }

  // openSeal fetches and opens our seal of one epoch of a topic.
  async openSeal(topicName, epoch) {
    const seal = await this.call("GET", `/v1/topics/${enc(topicName)}/key?epoch=${epoch}`);
    this.addKey(topicName, seal.keyEpoch, cx.openTopicKey(seal.encryptedKey, seal.nonce, this.identity));
  }

  // refreshTopic re-reads a topic's key epoch and claimer (and the rest).
  async refreshTopic(topic) {
    Object.assign(topic, await this.call("GET", `/v1/topics/${enc(topic.name)}`));
    return topic;
  }

  // keyState says whether we can write in a topic's current key epoch:
  // "ready" (we hold its key), "unkeyed" (never keyed: the first post keys
  // it), "unclaimed" (a new epoch nobody keyed yet: the next post claims it),
  // "not-member", or "waiting" (for a key holder to seal it for us).
  async keyState(topic) {
    if (!topic.keyEpoch) return "unkeyed";
    if (this.keyFor(topic.name, topic.keyEpoch)) return "ready";
    if (!topic.joined) return "not-member";
    if (!topic.keyPubkey) return "unclaimed";
    // Ask whether we are still waiting first, so the normal case makes no
    // failing request.
    const pending = await this.list(`/v1/topics/${enc(topic.name)}/pending-seals`);
    if (pending.some((p) => p.memberId === this.m.memberId)) return "waiting";
    try {
      await this.openSeal(topic.name, topic.keyEpoch);
      return "ready";
    } catch (e) {
      if (e.code === "seal_not_found") return "waiting";
      throw e;
    }
  }

  // loadEpochs opens the keys of older epochs that messages on screen were
  // written with. An epoch sealed for us before is there for the asking;
  // one that never was (we joined later) is remembered, not asked again.
  async loadEpochs(topic, epochs) {
    let added = false;
    for (const epoch of epochs) {
      if (!epoch || epoch >= topic.keyEpoch || this.keyFor(topic.name, epoch) || this.never.get(topic.name)?.has(epoch)) continue;
      try {
        await this.openSeal(topic.name, epoch);
        added = true;
      } catch (e) {
        if (e.code !== "seal_not_found") throw e;
        if (!this.never.has(topic.name)) this.never.set(topic.name, new Set());
        this.never.get(topic.name).add(epoch);
      }
    }
    return added;
  }

  // openKeysFor opens the keys that rows naming topics and key epochs
  // (notifications, messages) need, reading each topic's current epoch
  // first so a key still on its way is not asked for.
  async openKeysFor(rows) {
    const byTopic = new Map();
    for (const r of rows) {
      if (r.bodyVersion !== 2 || this.keyFor(r.topic, r.keyEpoch)) continue;
      if (!byTopic.has(r.topic)) byTopic.set(r.topic, new Set());
      byTopic.get(r.topic).add(r.keyEpoch);
    }
    for (const [name, epochs] of byTopic) {
      try {
        const t = await this.refreshTopic({ name });
        if (epochs.has(t.keyEpoch)) await this.keyState(t);
        await this.loadEpochs(t, epochs);
      } catch {
        /* those rows stay locked */
      }
    }
  }

  // claimKey keys the topic's current epoch (the first one, or a new one
  // after a rotation) with a fresh key sealed to ourselves.
  async claimKey(topic) {
    const key = cx.newTopicKey();
    const seal = cx.sealTopicKey(key, this.identity, this.identity.pubkey);
    try {
      // keyEpoch: the epoch we mean to key (1 for a never-keyed topic); a
      // rotation meanwhile is refused (409 key_epoch_mismatch).
      const s = await this.call("POST", `/v1/topics/${enc(topic.name)}/claim-key`, { ...seal, keyEpoch: Math.max(topic.keyEpoch, 1) });
      this.addKey(topic.name, s.keyEpoch, key);
      Object.assign(topic, { keyed: true, keyEpoch: s.keyEpoch, keyPubkey: cx.sealSenderHex(seal.encryptedKey) });
      return "ready";
    } catch (e) {
      if (e.code !== "topic_already_keyed" && e.code !== "key_epoch_mismatch") throw e;
      await this.refreshTopic(topic); // someone was first (or the epoch moved on): use theirs once it is sealed to us
      return this.keyState(topic);
    }
  }

  // reseal seals the current epoch's key for every topic member still
  // waiting; the same duty the CLI's `topic tail` runs every 30 s. The
  // caller refreshes the topic first, and each seal names its epoch, so
  // the broker refuses it if a rotation came in between (409
  // key_epoch_mismatch): an old key is never stored as the new epoch's.
  async reseal(topic) {
    const key = this.keyFor(topic.name, topic.keyEpoch);
    if (!key || !topic.keyPubkey) return 0;
    let n = 0;
    for (const p of await this.list(`/v1/topics/${enc(topic.name)}/pending-seals`)) {
      if (p.memberId === this.m.memberId) continue;
      try {
        await this.call("POST", `/v1/topics/${enc(topic.name)}/seal`, { memberId: p.memberId, ...cx.sealTopicKey(key, this.identity, p.pubkey), keyEpoch: topic.keyEpoch });
        n++;
      } catch (e) {
        if (["topic_not_keyed", "not_key_holder", "key_epoch_mismatch"].includes(e.code)) return n; // the epoch moved on: next cycle
        if (!["seal_exists", "unusable_pubkey", "validation_failed"].includes(e.code)) throw e;
      }
    }
    return n;
  }

  // decrypt opens a message (or a notification) with the key of its epoch.
  decrypt(msg) {
    if (msg.bodyVersion === 1) return { text: cx.decodeV1(msg.ciphertext), plain: true };
    const epoch = msg.keyEpoch || 1;
    const key = this.keyFor(msg.topic, epoch);
    if (!key) return { locked: true, never: !!this.never.get(msg.topic)?.has(epoch) };
    try {
      return { text: cx.decryptV2(msg.ciphertext, msg.nonce, key) };
    } catch {
      return { broken: true };
    }
  }

  // post encrypts with the current epoch's key, claiming the epoch first
  // when nobody has; a rotation between our look and our post (409
  // key_epoch_mismatch / topic_key_unclaimed) re-reads the topic and tries
  // again with the same clientMessageId.
  async post(topic, text) {
    const mentions = [...new Set([...text.matchAll(/(?:^|[^A-Za-z0-9_-])@([A-Za-z0-9][A-Za-z0-9_-]{0,63})/g)].map((m) => m[1].toLowerCase()))].slice(0, 16);
    const clientMessageId = `web-${cx.randomId()}`;
    for (let attempt = 0; ; attempt++) {
      let state = await this.keyState(topic);
      if (state === "unkeyed" || state === "unclaimed") state = await this.claimKey(topic);
      if (state !== "ready") throw new Error("This topic's key has not been shared with you yet.");
      const epoch = topic.keyEpoch;
      const body = { topic: topic.name, bodyVersion: 2, keyEpoch: epoch, ...cx.encryptV2(text, this.keyFor(topic.name, epoch)), clientMessageId };
      if (mentions.length) body.mentions = mentions;
      try {
        return await this.call("POST", "/v1/messages", body);
      } catch (e) {
        if (attempt >= 2 || !["key_epoch_mismatch", "topic_key_unclaimed"].includes(e.code)) throw e;
        await this.refreshTopic(topic);
      }
    }
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
    if (this.live.state !== "reconnecting") this.setLive("connecting");
    let tok;
    try {
      tok = await this.call("POST", "/v1/stream/token");
    } catch (e) {
      // Refused outright (revoked, left, archived): final. Anything else
      // (the network, a restart) is retried.
      if ([401, 403, 404, 410].includes(e.status)) return this.endForGood(e.code === "mesh_archived" ? "mesh_archived" : "credential_revoked");
      return this.retryLater(this.live.reason);
    }
    const q = new URLSearchParams({ token: tok.token });
    if (this.live.lastSeq) q.set("since", String(this.live.lastSeq));
    const es = new EventSource(`/stream?${q}`);
    this.live.es = es;
    es.addEventListener("ready", (ev) => {
      const r = JSON.parse(ev.data);
      // clamped: we asked to resume beyond the newest seq the broker has
      // (its database was restored); follow from its newest seq.
      if (!this.live.lastSeq || r.clamped) this.live.lastSeq = r.lastSeq;
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
      let end = {};
      try {
        end = JSON.parse(ev.data || "{}");
      } catch {
        /* no reason given */
      }
      this.closeES();
      if (end.reconnect) return this.retryLater(end.reason); // a restart or an outage: resume with ?since=
      if (end.reason === "credential_expired" && Date.now() - (this.live.renewedAt || 0) > 60000) {
        // Our member session ran out: mint a new one and resume. If the
        // membership is gone, minting fails and the stream ends for good;
        // a fresh session expiring again within a minute (a clock far
        // off) ends it too, rather than reconnecting in a loop.
        this.live.renewedAt = Date.now();
        this.session = null;
        return this.retryLater(end.reason);
      }
      this.endForGood(end.reason || "");
    });
    es.onerror = () => {
      if (this.live.es !== es) return;
      this.closeES();
      this.retryLater("");
    };
  }

  closeES() {
    this.live.es?.close();
    this.live.es = null;
  }

  // retryLater reconnects with exponential backoff (1 s … 30 s, reset by
  // the next `ready`), saying why in the banner.
  retryLater(reason) {
    if (this.ended) return;
    const wait = Math.min(30000, 1000 * 2 ** this.live.retry++);
    this.setLive("reconnecting", reason);
    this.live.timer = setTimeout(() => this.connect(), wait);
  }

  endForGood(reason) {
    this.closeES();
    this.ended = true;
    clearTimeout(this.live.timer);
    this.setLive("ended", reason);
  }

  stopLive() {
    clearTimeout(this.live.timer);
    this.closeES();
    if (!this.ended) this.setLive("idle");
  }
}
