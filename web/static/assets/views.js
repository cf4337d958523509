// views.js — the views inside one mesh: topics (the chat itself is in
// chat.js), peers, members, invites and notifications; and the inbox across
// meshes.
import { auth, userCall } from "./api.js";
import * as cx from "./crypto.js";
import * as store from "./store.js";
import { endWords } from "./mesh.js";
import { chatView } from "./chat.js";
import { h, mount, loading, empty, errorBox, toast, confirmDialog, formDialog, field, ago, copy, ut } from "./ui.js";

const enc = encodeURIComponent;

export function meshView(ctx, r, { shell, S, go }) {
  ctx.startLive();
  const tabs = [["t", "Topics"], ["peers", "Peers"], ["members", "Members"], ["invites", "Invites"], ["inbox", "Inbox"]];
  const banner = h("div.banner", { hidden: true, role: "status", "data-testid": "live-banner" });
  const liveDot = h("span.live-dot", { title: "live updates" });
  const inboxBadge = h("span.count", { hidden: true, "data-testid": "inbox-count" });
  const paintLive = () => {
    const l = ctx.live;
    liveDot.dataset.state = l.state;
    liveDot.title = `live updates: ${l.state}`;
    banner.hidden = l.state !== "ended" && l.state !== "reconnecting";
    if (l.state === "ended") {
      banner.className = "banner error";
      banner.dataset.testid = "stream-ended";
      banner.dataset.reason = l.reason;
      mount(banner, h("strong", { text: "Live updates ended. " }), endWords(l.reason));
    } else if (l.state === "reconnecting") {
      banner.className = "banner";
      banner.dataset.testid = "live-banner";
      banner.dataset.reason = l.reason;
      mount(banner, l.reason ? `${endWords(l.reason)} ` : "", "Reconnecting to live updates…");
    }
  };
  const paintInbox = () => {
    inboxBadge.hidden = !ctx.unreadNotifications;
    inboxBadge.textContent = ctx.unreadNotifications > 99 ? "99+" : String(ctx.unreadNotifications);
  };
  S.cleanup.push(ctx.on("live", paintLive), ctx.on("notification", paintInbox));
  const nav = h("nav.tabs.mesh-tabs", { "aria-label": "Mesh sections" },
    tabs.map(([id, label]) => h("a.tab", { href: `#/m/${ctx.id}/${id}`, "aria-current": r.tab === id ? "page" : null },
      label, id === "inbox" ? inboxBadge : null)));
  const body = h("div.mesh-body");
  shell(ctx,
    h("div.mesh-head", {}, h("div", {}, h("h1", {}, ut(ctx.m.meshName, "span.mesh-name"), liveDot), h("small.muted", { text: `@${ctx.m.displayName} · ${ctx.m.role}` })), nav),
    banner, body);
  paintLive();
  paintInbox();
  const views = { t: topicsView, peers: peersView, members: membersView, invites: invitesView, inbox: inboxView };
  (views[r.tab] || topicsView)(ctx, body, r, { S, go });
}

// ---------------- topics + chat ----------------
async function topicsView(ctx, body, r, { S, go }) {
  const side = h("aside.topics", { "aria-label": "Topics" });
  const pane = h("section.chat");
  const open = r.arg;
  mount(body, h("div.split", { "data-open": open ? "topic" : "list" }, side, pane));
  let topics = [];
  const paintSide = () => {
    mount(side,
      h("div.side-head", {}, h("h2", { text: "Topics" }), h("button.btn.small", { type: "button", onclick: newTopic, "data-testid": "new-topic" }, "+ New")),
      topics.length ? h("ul.topic-list", {}, topics.map((t) =>
        h("li", {}, h("a.topic", { href: `#/m/${ctx.id}/t/${t.name}`, "aria-current": t.name === open ? "page" : null },
          t.visibility === "public" ? h("span.hash", { text: "#" }) : h("span.hash", { title: t.visibility }, h("i.icon-lock", { "aria-label": "private" })), h("span.name", { text: t.name }),
          t.keyed ? h("span.e2e", { title: "end-to-end encrypted", text: "e2e" }) : null,
          !t.joined ? h("small.muted", { text: "join" }) : t.unread ? h("span.count", { text: String(t.unread), "data-testid": `unread-${t.name}` }) : null))))
        : empty("No topics", "Create one to start talking."));
  };
  const newTopic = async () => {
    const fd = await formDialog("New topic", [
      field("Name", h("input", { name: "name", required: true, pattern: "#?[a-z0-9][a-z0-9\\-]{0,49}", placeholder: "deploys", autocomplete: "off" }), "lower-case letters, digits and -"),
      field("Description", h("input", { name: "description", maxlength: 500 })),
      field("Visibility", h("select", { name: "visibility" }, h("option", { value: "public" }, "Public — anyone in the mesh can join"), h("option", { value: "private" }, "Private — members you add"))),
    ], "Create topic");
    if (!fd) return;
    try {
      const t = await ctx.call("POST", "/v1/topics", { name: fd.get("name"), description: fd.get("description"), visibility: fd.get("visibility") });
      go(`#/m/${ctx.id}/t/${t.name}`);
    } catch (e) {
      toast(e.message, "error");
    }
  };
  mount(side, loading("Loading topics"));
  if (open) mount(pane, loading("Opening topic"));
  else mount(pane, h("div.state.empty.desktop-only", {}, h("strong", { text: "Pick a topic" }), h("p", { text: "Messages are encrypted in this browser before they leave it." })));
  try {
    topics = await ctx.list("/v1/topics");
  } catch (e) {
    return mount(side, errorBox(e, () => topicsView(ctx, body, r, { S, go })));
  }
  paintSide();
  S.cleanup.push(ctx.on("message", (m) => {
    const t = topics.find((x) => x.name === m.topic);
    if (!t) return;
    let changed = false;
    if (m.bodyVersion === 2 && !t.keyed) changed = t.keyed = true; // the first post keyed it
    if (t.joined && m.topic !== open && m.senderMemberId !== ctx.m.memberId) {
      t.unread = (t.unread || 0) + 1;
      changed = true;
    }
    if (changed) paintSide();
  }));
  if (!open) return;
  const topic = topics.find((t) => t.name === open);
  if (!topic) return mount(pane, empty(["#", ut(open), " not found"], "It may be private, archived or renamed.", h("a.btn", { href: `#/m/${ctx.id}/t` }, "Back to topics")));
  topic.unread = 0;
  paintSide();
  chatView(ctx, pane, topic, { S, go, refreshSide: paintSide });
}

// ---------------- peers ----------------
async function peersView(ctx, body, r, { S }) {
  mount(body, loading("Loading peers"));
  try {
    const peers = await ctx.list("/v1/peers");
    ctx.peers.clear(); // presence changes missed while the stream was closed
    for (const p of peers) ctx.peers.set(p.sessionId, p);
  } catch (e) {
    return mount(body, errorBox(e, () => peersView(ctx, body, r, { S })));
  }
  const paint = () => {
    const peers = [...ctx.peers.values()].sort((a, b) => a.displayName.localeCompare(b.displayName));
    if (!peers.length) {
      return mount(body, empty("No peers online", "Claude Code sessions appear here, with their status, while they are connected. Join one with `claudemesh join` and start it with `claudemesh launch`."));
    }
    mount(body, h("section.page", {}, h("h2", { text: `Peers online (${peers.length})` }),
      h("ul.peer-list", { "data-testid": "peers" }, peers.map((p) =>
        h("li.card.peer", {},
          h("span.status-dot", { "data-status": p.status, title: p.status }),
          h("div.peer-main", {},
            h("div.row", {}, h("strong", { text: `@${p.displayName}` }), h("span.tag", { text: p.status }), h("small.muted", { text: `since ${ago(p.statusAt)} · ${p.statusSource}` })),
            p.summary ? ut(p.summary, "p.summary") : h("p.summary.muted", { text: "No summary" }),
            h("small.muted.mono", {}, ut(p.sessionId), p.cwd ? [" · ", ut(p.cwd)] : null)))))));
  };
  paint();
  S.cleanup.push(ctx.on("presence", paint));
}

// ---------------- members ----------------
async function membersView(ctx, body, r, opts) {
  mount(body, loading("Loading members"));
  let members;
  try {
    members = await ctx.list("/v1/members");
  } catch (e) {
    return mount(body, errorBox(e, () => membersView(ctx, body, r, opts)));
  }
  const revoke = async (m) => {
    if (!(await confirmDialog(`Revoke @${m.displayName}?`, "Their keys and sessions stop working at once and their live connections are closed. This cannot be undone.", "Revoke member"))) return;
    try {
      await ctx.call("DELETE", `/v1/members/${m.id}`);
      toast(`Revoked @${m.displayName}`);
      membersView(ctx, body, r, opts);
    } catch (e) {
      toast(e.code === "owner_member" ? "The mesh owner cannot be revoked." : e.message, "error");
    }
  };
  mount(body, h("section.page", {}, h("h2", { text: `Members (${members.length})` }),
    h("ul.member-list", { "data-testid": "members" }, members.map((m) =>
      h("li.card.member", { "data-name": m.displayName },
        h("div.avatar", { "aria-hidden": "true", text: m.displayName.slice(0, 1).toUpperCase() }),
        h("div.peer-main", {},
          h("div.row", {}, h("strong", { text: `@${m.displayName}` }), h("span.badge", { text: m.role }), m.id === ctx.m.memberId ? h("span.tag.ok", { text: "you" }) : null,
            m.userId ? h("span.tag", { text: "person" }) : h("span.tag", { text: "peer" })),
          h("small.muted.mono", { title: m.pubkey, text: `key ${m.pubkey.slice(0, 16)}… · joined ${ago(m.joinedAt)}` })),
        ctx.isAdmin && m.id !== ctx.m.memberId ? h("button.btn.danger.small", { type: "button", onclick: () => revoke(m), "data-testid": `revoke-${m.displayName}` }, "Revoke") : null)))));
}

// ---------------- invites ----------------
function invitesView(ctx, body, r, { S }) {
  const out = h("div.invite-out");
  const listBox = h("div.part");
  const form = h("form.card", {
    onsubmit: async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const req = { role: fd.get("role"), maxUses: Number(fd.get("maxUses")), expiresInSeconds: Number(fd.get("expires")) };
      try {
        const path = `/v1/meshes/${ctx.id}/invites`;
        const inv = await userCall("POST", path, req);
        showInvite(inv);
        if (S.features.inviteList) loadList();
      } catch (ex) {
        toast(ex.status === 403 ? "Only admins can invite." : ex.message, "error");
      }
    },
  },
  h("h2", { text: "Invite people and peers" }),
  h("div.fields", {},
    field("Role", h("select", { name: "role" }, h("option", { value: "member" }, "member"), h("option", { value: "admin" }, "admin"))),
    field("Max uses", h("input", { name: "maxUses", type: "number", min: 1, max: 1000, value: 1, required: true })),
    field("Expires in", h("select", { name: "expires" }, h("option", { value: 3600 }, "1 hour"), h("option", { value: 86400 }, "1 day"),
      h("option", { value: 604800, selected: true }, "7 days"), h("option", { value: 2592000 }, "30 days")))),
  h("button.btn.primary", { type: "submit", disabled: !ctx.isAdmin, "data-testid": "mint-invite" }, "Create invite"),
  !ctx.isAdmin ? h("p.muted", { text: "Only mesh admins can create invites." }) : null);
  const showInvite = (inv) => {
    const link = `${location.origin}/#/join/${inv.token}`;
    const cli = `claudemesh join ${inv.token}`;
    const line = (label, value, id) => h("div.copyline", {}, h("span.muted", { text: label }), h("code", { text: value, "data-testid": id }),
      h("button.btn.small", { type: "button", onclick: () => copy(value) }, "Copy"));
    mount(out, h("div.card.invite-token", { role: "status" },
      h("strong", { text: "Invite created — copy it now, it is shown only once." }),
      line("Browser link", link, "invite-link"), line("Claude Code", cli, "invite-cli"),
      h("small.muted", { text: `${inv.role} · up to ${inv.maxUses} use${inv.maxUses > 1 ? "s" : ""} · expires ${new Date(inv.expiresAt).toLocaleString()}` })));
  };
  // The invite list (InviteSummary: never the token, its prefix instead)
  // and revoke, for admins, when the served contract has them.
  const inviteState = (i) => i.revokedAt ? "revoked" : new Date(i.expiresAt) <= new Date() ? "expired" : i.uses >= i.maxUses ? "used up" : "open";
  const loadList = async () => {
    mount(listBox, loading("Loading invites"));
    try {
      const items = [];
      let cursor = null;
      do {
        const page = await userCall("GET", `/v1/meshes/${ctx.id}/invites?limit=200${cursor ? `&cursor=${enc(cursor)}` : ""}`);
        items.push(...page.items);
        cursor = page.hasMore && items.length < 1000 ? page.nextCursor : null;
      } while (cursor);
      const open = (i) => (inviteState(i) === "open" ? 1 : 0);
      items.sort((a, b) => open(b) - open(a) || b.createdAt.localeCompare(a.createdAt)); // open ones first, newest first
      const revoke = async (i) => {
        if (!(await confirmDialog(`Revoke invite ${i.tokenPrefix || ""}…?`, "Nobody can join with it any more; members who already joined stay.", "Revoke invite"))) return;
        try {
          await userCall("DELETE", `/v1/meshes/${ctx.id}/invites/${i.id}`);
          toast("Invite revoked");
          loadList();
        } catch (e) {
          toast(e.message, "error");
        }
      };
      mount(listBox, h("h2", { text: "Invites" }), items.length ? h("ul.member-list", { "data-testid": "invites" }, items.map((i) => {
        const st = inviteState(i);
        return h("li.card.member", { class: st === "open" ? "" : "read", "data-prefix": i.tokenPrefix, "data-state": st },
          h("div.peer-main", {},
            h("div.row", {}, h("code", { text: i.tokenPrefix ? `${i.tokenPrefix}…` : "(no prefix)" }), h("span.badge", { text: i.role }),
              h(st === "open" ? "span.tag.ok" : "span.tag", { text: st }), h("small.muted", { text: `${i.uses} of ${i.maxUses} used` })),
            h("small.muted", { text: `${i.createdByDisplayName ? `by @${i.createdByDisplayName} · ` : ""}created ${ago(i.createdAt)} · ${i.revokedAt ? `revoked ${ago(i.revokedAt)}` : `expires ${ago(i.expiresAt)}`}` })),
          S.features.inviteRevoke && st === "open" ? h("button.btn.danger.small", { type: "button", "data-testid": `revoke-invite-${i.tokenPrefix}`, onclick: () => revoke(i) }, "Revoke") : null);
      })) : empty("No invites yet", "Invites you create appear here, with their uses and expiry."));
    } catch (e) {
      mount(listBox, errorBox(e, loadList));
    }
  };
  mount(body, h("section.page", {}, form, out, listBox));
  if (S.features.inviteList && ctx.isAdmin) loadList();
}

// ---------------- notifications ----------------
async function inboxView(ctx, body, r, opts) {
  mount(body, loading("Loading notifications"));
  let items;
  try {
    items = (await ctx.call("GET", "/v1/notifications?limit=100")).items;
  } catch (e) {
    return mount(body, errorBox(e, () => inboxView(ctx, body, r, opts)));
  }
  const preview = (n) => previewOf(ctx.decrypt(n));
  const markRead = async (req) => {
    try {
      await ctx.call("POST", "/v1/notifications/read", req);
      const now = new Date().toISOString();
      for (const n of items) if (req.upTo || req.ids.includes(n.id)) n.readAt ??= now;
      ctx.unreadNotifications = items.filter((n) => !n.readAt).length;
      ctx.emit("notification", null);
      paint();
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const paint = () => {
    const unread = items.filter((n) => !n.readAt).length;
    ctx.unreadNotifications = unread;
    if (!items.length) return mount(body, empty("No notifications", "When someone @mentions you in a topic, it shows up here."));
    mount(body, h("section.page", {},
      h("div.page-head", {}, h("h2", { text: `Notifications (${unread} unread)` }), unread ? h("button.btn.small", { type: "button", onclick: () => markRead({ upTo: items[0].id }) }, "Mark all read") : null),
      h("ul.member-list", { "data-testid": "notifications" }, items.map((n) =>
        h("li.card.member", { class: n.readAt ? "read" : "unread" },
          h("div.peer-main", {},
            h("div.row", {}, h("strong", { text: `@${n.senderDisplayName}` }), h("span.muted", { text: "in" }), h("a", { href: `#/m/${ctx.id}/t/${n.topic}`, text: `#${n.topic}` }), h("small.muted", { text: ago(n.createdAt) })),
            preview(n)),
          n.readAt ? null : h("button.btn.small", { type: "button", onclick: () => markRead({ ids: [n.id] }) }, "Mark read"))))));
  };
  paint();
  let gone = false;
  opts.S.cleanup.push(() => (gone = true), ctx.on("notification", async (n) => {
    if (!n) return;
    items.unshift(n);
    await ctx.openKeysFor([n]);
    if (!gone) paint();
  }));
  const before = ctx.keyVersion;
  await ctx.openKeysFor(items);
  if (!gone && ctx.keyVersion !== before) paint();
}

// previewOf shows a notification's body as its decryption d came out: the
// text (a v1 body marked as sent unencrypted), or why it cannot be read here.
function previewOf(d) {
  if (d?.text !== undefined) {
    return h("div.preview", {}, ut(d.text, "p.summary", { "data-testid": "preview" }),
      d.plain ? h("span.tag.warn", { title: "sent before this topic was keyed; not end-to-end encrypted", text: "unencrypted" }) : null);
  }
  if (d?.broken) return h("p.summary.muted", { text: "This message could not be decrypted." });
  return h("p.summary.muted", { text: "Encrypted — open the topic to read it" });
}

// v1 reads a plaintext (v1) body, which needs no key.
function v1(n) {
  try {
    return { text: cx.decodeV1(n.ciphertext), plain: true };
  } catch {
    return { broken: true };
  }
}

// ---------------- cross-mesh inbox ----------------
// The user's mentions across every mesh (GET /v1/me/notifications) and
// their topics with unread messages (GET /v1/me/topics), read with the
// user token. A preview is decrypted when this browser holds the mesh's
// key for it; otherwise the row links to its topic.
const MAX_SEQ = Number.MAX_SAFE_INTEGER; // a read mark is clamped to the newest seq

export async function crossMeshInbox(shell, { S, meshCtx }) {
  const body = h("section.page", {}, loading("Loading your inbox"));
  shell(null, body);
  let items, topics;
  try {
    items = (await userCall("GET", "/v1/me/notifications?limit=100")).items;
    topics = S.features.myTopics ? (await userCall("GET", "/v1/me/topics?limit=200")).items.filter((t) => t.unread > 0) : [];
  } catch (e) {
    return mount(body, errorBox(e, () => crossMeshInbox(shell, { S, meshCtx })));
  }
  const ctxs = new Map(); // meshId → MeshCtx, for the meshes whose keys we could open
  await cx.ready; // v1 bodies are base64 text: shown without any key
  const preview = (n) => previewOf(n.bodyVersion === 1 ? v1(n) : ctxs.get(n.meshId)?.decrypt(n));
  const markRead = async (req) => {
    try {
      await userCall("POST", "/v1/me/notifications/read", req);
      const now = new Date().toISOString();
      for (const n of items) {
        if (n.readAt || !(req.upTo || req.ids.includes(n.id))) continue;
        n.readAt = now;
        const c = S.ctx.get(n.meshId);
        if (c && c.unreadNotifications > 0) c.unreadNotifications--;
      }
      paint();
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const markTopic = async (t) => {
    try {
      await userCall("PATCH", `/v1/me/topics/${t.topicId}/read`, { seq: MAX_SEQ });
      topics = topics.filter((x) => x.topicId !== t.topicId);
      paint();
    } catch (e) {
      toast(e.message, "error");
    }
  };
  const paint = () => {
    const unread = items.filter((n) => !n.readAt).length;
    mount(body,
      h("div.page-head", {}, h("h1", { text: `Inbox (${unread} unread)` }),
        unread ? h("button.btn.small", { type: "button", onclick: () => markRead({ upTo: items[0].id }) }, "Mark all read") : null),
      topics.length ? h("div.part", {}, h("h2", { text: "Topics with unread messages" }),
        h("ul.member-list", { "data-testid": "unread-topics" }, topics.map((t) =>
          h("li.card.member", {},
            h("div.peer-main", {}, h("div.row", {}, h("a", { href: `#/m/${t.meshId}/t/${t.name}`, text: `#${t.name}` }), h("span.muted", {}, "in ", ut(t.meshName)),
              h("span.count", { text: String(t.unread) }))),
            h("button.btn.small", { type: "button", onclick: () => markTopic(t) }, "Mark read"))))) : null,
      h("div.part", {}, h("h2", { text: "Mentions" }),
        items.length ? h("ul.member-list", { "data-testid": "my-notifications" }, items.map((n) =>
        h("li.card.member", { class: n.readAt ? "read" : "unread" },
          h("div.peer-main", {},
            h("div.row", {}, h("strong", { text: `@${n.senderDisplayName}` }), h("span.muted", { text: "in" }),
              h("a", { href: `#/m/${n.meshId}/t/${n.topic}`, text: `#${n.topic}` }), ut(n.meshName, "span.badge"), h("small.muted", { text: ago(n.createdAt) })),
            preview(n)),
          n.readAt ? null : h("button.btn.small", { type: "button", onclick: () => markRead({ ids: [n.id] }) }, "Mark read"))))
          : empty("Nothing for you", "Mentions from every mesh you belong to show up here.")));
  };
  paint();
  // Open what this browser can: the keys of each mesh it already holds an
  // identity for. (Opening a mesh in a browser without one registers a new
  // key for the member, which reading the inbox must not do.)
  const uid = auth.user.id;
  for (const meshId of new Set(items.filter((n) => n.bodyVersion === 2).map((n) => n.meshId))) {
    try {
      const mine = new Set(items.filter((n) => n.meshId === meshId).map((n) => n.memberId));
      if (!S.ctx.has(meshId) && !(await Promise.all([...mine].map((id) => store.getIdentity(uid, meshId, id)))).some(Boolean)) continue;
      const c = await meshCtx(meshId);
      if (!c) continue;
      await c.openKeysFor(items.filter((n) => n.meshId === meshId));
      ctxs.set(meshId, c);
      paint();
    } catch {
      /* that mesh's rows stay "open the topic to read it" */
    }
  }
}
