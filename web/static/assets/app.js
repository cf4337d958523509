// app.js — boot, routing (by URL fragment: #/…), the shell and the account
// and mesh-list views. Mesh views are in views.js.
import * as api from "./api.js";
import { MeshCtx } from "./mesh.js";
import * as cx from "./crypto.js";
import * as store from "./store.js";
import { h, mount, loading, empty, errorBox, toast, field, formDialog, confirmDialog, ut, plain } from "./ui.js";
import { meshView, crossMeshInbox } from "./views.js";

const app = document.getElementById("app");
export const S = { features: null, meshes: [], unread: new Map(), ctx: new Map(), cleanup: [], pendingInvite: null };

// ---- routing ----
// MAX_PART bounds one decoded part of the fragment: ids are 36 characters,
// topic names 50, invite tokens under 100. Anything longer leads nowhere.
const MAX_PART = 512;

// decodePart is decodeURIComponent that says null instead of throwing on a
// malformed escape ("%E0%A4%A" threw URIError and the page stayed on
// "Starting…").
function decodePart(p) {
  try {
    return decodeURIComponent(p);
  } catch {
    return null;
  }
}

// route reads the fragment; any fragment it cannot read, or does not know,
// is { name: "notfound" }, never an exception.
function route() {
  const raw = location.hash.replace(/^#\/?/, "");
  if (!raw) return { name: "meshes" };
  const parts = raw.split("/").filter(Boolean).map(decodePart);
  if (raw.length > 8 * MAX_PART || parts.some((p) => p === null || p.length > MAX_PART)) return { name: "notfound" };
  if (!parts.length) return { name: "meshes" };
  if (parts[0] === "join" && parts[1]) {
    // The invite token rides in the fragment (never sent to a server, no
    // Referer); keep it in this tab only and take it out of the address bar.
    S.pendingInvite = parts[1];
    sessionStorage.setItem("claudemesh.invite", parts[1]);
    history.replaceState(null, "", "#/join");
    return { name: "join" };
  }
  if (parts[0] === "join" && parts.length === 1) return { name: "join" };
  if (parts[0] === "inbox" && parts.length === 1) return { name: "inbox" };
  if (parts[0] === "m" && parts[1] && parts.length <= 4) return { name: "mesh", meshId: parts[1], tab: parts[2] || "t", arg: parts[3] };
  return { name: "notfound" };
}

export const go = (hash) => {
  if (location.hash === hash) render();
  else location.hash = hash;
};

async function render() {
  for (const fn of S.cleanup.splice(0)) fn();
  try {
    const r = route();
    if (!api.auth.user) return authView(r);
    // One live stream at a time: the mesh on screen (a browser allows only a
    // few connections per host). Another mesh resumes from its last seq.
    for (const [id, c] of S.ctx) if (r.name !== "mesh" || id !== r.meshId) c.stopLive();
    if (r.name === "notfound") return notFoundView();
    if (r.name === "join") return await joinView();
    if (r.name === "inbox" && S.features.inbox) return crossMeshInbox(shell, { S, meshCtx });
    if (r.name === "mesh") {
      const ctx = await meshCtx(r.meshId);
      if (!ctx) return shell(null, errorBox(new Error("This mesh is not in your list. Ask for an invite, or pick another mesh."), () => go("#/")));
      return meshView(ctx, r, { shell, S, go });
    }
    return await meshesView();
  } catch (e) {
    // Whatever went wrong, the page says so and offers a way on: the
    // shell when signed in, a bare box (with the way home) when not.
    if (api.auth.user) shell(null, errorBox(e, render));
    else mount(app, h("div.center", {}, errorBox(e, () => go("#/"))));
  }
}

// notFoundView is where an address the dashboard cannot read leads.
function notFoundView() {
  shell(null, h("section.page", { "data-testid": "not-found" },
    empty("Page not found", "This address does not lead anywhere in the dashboard: it may be mistyped or cut short.",
      h("a.btn.primary", { href: "#/" }, "Go to your meshes"))));
}

// ---- shell ----
function shell(ctx, ...content) {
  const meshes = S.meshes;
  const switcher = meshes.length
    ? h("select.mesh-switch", { "aria-label": "Mesh", onchange: (e) => go(e.target.value ? `#/m/${e.target.value}` : "#/") },
      h("option", { value: "" }, "All meshes"),
      meshes.map((m) => h("option", { value: m.meshId, selected: ctx?.id === m.meshId }, plain(m.meshName))))
    : null;
  mount(app,
    h("header.topbar", {},
      h("a.brand", { href: "#/", "aria-label": "claudemesh home" }, h("span.logo", { "aria-hidden": "true" }), h("span.brand-name", { text: "claudemesh" })),
      switcher,
      h("div.spacer"),
      S.features?.inbox ? h("a.btn.ghost", { href: "#/inbox" }, "Inbox") : null,
      h("span.who", { title: plain(api.auth.user.email) }, ut(api.auth.user.name)),
      h("button.btn.ghost", { type: "button", onclick: () => api.logout().then(() => go("#/")) }, "Sign out")),
    h("main.main", {}, ...content));
}

// ---- sign in / sign up ----
function authView(r) {
  let mode = "signin";
  const err = h("p.form-error", { role: "alert" });
  const nameF = field("Name", h("input", { name: "name", autocomplete: "name", maxlength: 100 }));
  const form = h("form.card.auth", {
    onsubmit: async (e) => {
      e.preventDefault();
      const fd = new FormData(form);
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      err.textContent = "";
      try {
        if (mode === "signup") await api.signup(fd.get("email"), fd.get("password"), fd.get("name"));
        else await api.login(fd.get("email"), fd.get("password"));
        await loadMeshes();
        render();
      } catch (ex) {
        err.textContent = ex.problem?.errors?.map((x) => `${x.field}: ${x.message}`).join("; ") || ex.message;
        btn.disabled = false;
      }
    },
  });
  const tabs = h("div.tabs", { role: "tablist" });
  const paint = () => {
    mount(tabs,
      h("button.tab", { type: "button", role: "tab", "aria-selected": String(mode === "signin"), onclick: () => ((mode = "signin"), paint()) }, "Sign in"),
      h("button.tab", { type: "button", role: "tab", "aria-selected": String(mode === "signup"), onclick: () => ((mode = "signup"), paint()) }, "Create account"));
    nameF.hidden = mode !== "signup";
    nameF.querySelector("input").required = mode === "signup";
    form.querySelector("button[type=submit]").textContent = mode === "signup" ? "Create account" : "Sign in";
    form.querySelector("input[name=password]").autocomplete = mode === "signup" ? "new-password" : "current-password";
  };
  mount(form,
    h("h1", {}, h("span.logo", { "aria-hidden": "true" }), "claudemesh"),
    h("p.muted", { text: r.name === "join" ? "Sign in or create an account to accept your invite." : "End-to-end encrypted topics for your Claude Code peers and the people who run them." }),
    tabs,
    nameF,
    field("Email", h("input", { name: "email", type: "email", required: true, autocomplete: "email" })),
    field("Password", h("input", { name: "password", type: "password", required: true, minlength: 8 })),
    err,
    h("button.btn.primary.wide", { type: "submit" }, "Sign in"));
  paint();
  mount(app, h("div.center", {}, form));
  form.querySelector("input[name=email]").focus();
}

// ---- meshes ----
// loadMeshes reads the user's memberships from GET /v1/me: every mesh the
// user created or joined (invite joins with the user's token are linked to
// the account). A user with several members in one mesh (the dashboard one
// and CLI peers) sees the mesh once; its member session picks the dashboard
// member. Unread counts across meshes come from GET /v1/me/topics.
export async function loadMeshes() {
  const me = await api.userCall("GET", "/v1/me");
  // The meshes the user owns (ownerUserId in GET /v1/meshes, which also
  // lists the meshes the user belongs to): an owner archives, never leaves.
  const uid = api.auth.user.id;
  const owned = S.features.leave ? new Set((await api.userCall("GET", "/v1/meshes?limit=200")).items.filter((x) => x.ownerUserId === uid).map((x) => x.id)) : new Set();
  const byId = new Map();
  for (const m of me.memberships) if (!byId.has(m.meshId)) byId.set(m.meshId, { ...m, owner: owned.has(m.meshId) });
  S.meshes = [...byId.values()].sort((a, b) => a.meshName.localeCompare(b.meshName));
  for (const [id, c] of S.ctx) {
    const m = byId.get(id);
    if (m && !c.ended) c.m.meshName = m.meshName; // a rename
    else if (m || !c.ended) {
      // Gone (left, revoked, archived): mint no more sessions for it. Or
      // joined again after an end: start afresh. An ended mesh that is
      // gone keeps its context, so its page still says why it ended.
      c.stopLive();
      S.ctx.delete(id);
    }
  }
}

// loadUnread sums the unread counts of the user's topics per mesh.
async function loadUnread() {
  S.unread = new Map();
  if (!S.features.myTopics) return;
  let cursor = null;
  do {
    const page = await api.userCall("GET", `/v1/me/topics?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    for (const t of page.items) S.unread.set(t.meshId, (S.unread.get(t.meshId) || 0) + t.unread);
    cursor = page.hasMore ? page.nextCursor : null;
  } while (cursor);
}

async function meshCtx(meshId) {
  if (!S.ctx.has(meshId)) {
    const m = S.meshes.find((x) => x.meshId === meshId);
    if (!m) return null;
    const ctx = new MeshCtx(m);
    S.ctx.set(meshId, ctx);
    ctx.ready = ctx.init().catch((e) => {
      S.ctx.delete(meshId);
      throw e;
    });
  }
  const ctx = S.ctx.get(meshId);
  await ctx.ready;
  return ctx;
}

async function meshesView() {
  const list = h("div.grid");
  const createForm = h("form.card.inline-form", {
    onsubmit: async (e) => {
      e.preventDefault();
      const fd = new FormData(createForm);
      const name = fd.get("name").trim();
      const slug = fd.get("slug").trim();
      if (!name) return;
      try {
        // Without a slug the broker makes one from the name (and never
        // refuses it); a chosen one that is taken is a 409 saying so.
        const res = await api.userCall("POST", "/v1/meshes", slug ? { name, slug } : { name });
        await loadMeshes();
        toast(["Created ", ut(res.mesh.name)]);
        go(`#/m/${res.mesh.id}/t/general`);
      } catch (ex) {
        toast(ex.message, "error");
      }
    },
  },
  h("h2", { text: "New mesh" }),
  h("div.row", {}, h("input", { name: "name", placeholder: "Platform team", "aria-label": "Mesh name", maxlength: 100, required: true }),
    h("button.btn.primary", { type: "submit" }, "Create mesh")),
  field("Slug (optional)", h("input", { name: "slug", placeholder: "platform-team", pattern: "[a-z0-9][a-z0-9\\-]{0,47}", maxlength: 48, autocomplete: "off", "data-testid": "mesh-slug" }),
    "What the CLI's --mesh takes: a-z, 0-9 and -. Made from the name when empty."));
  const joinForm = h("form.card.inline-form", {
    onsubmit: (e) => {
      e.preventDefault();
      const v = new FormData(joinForm).get("invite").trim();
      const token = v.includes("#/join/") ? v.split("#/join/")[1] : v;
      if (token) go(`#/join/${encodeURIComponent(token)}`);
    },
  },
  h("h2", { text: "Join with an invite" }),
  h("div.row", {}, h("input", { name: "invite", placeholder: "Invite link or token", "aria-label": "Invite", required: true, autocomplete: "off" }),
    h("button.btn", { type: "submit" }, "Join")));
  shell(null, h("section.page", {}, h("div.page-head", {}, h("h1", { text: "Your meshes" })), list, h("div.two", {}, createForm, joinForm)));
  mount(list, loading("Loading meshes"));
  try {
    await loadMeshes();
    await loadUnread();
  } catch (e) {
    return mount(list, errorBox(e, render));
  }
  if (!S.meshes.length) {
    return mount(list, empty("No meshes yet", "Create a mesh for your team, or join one with an invite link."));
  }
  mount(list, S.meshes.map((m) =>
    h("div.card.mesh-card", { "data-testid": "mesh-card" },
      h("a.mesh-link", { href: `#/m/${m.meshId}/t/general` },
        h("div.mesh-icon", { "aria-hidden": "true", text: ([...plain(m.meshName)][0] || "").toUpperCase() }),
        h("div", {}, ut(m.meshName, "strong"), h("small.muted", { text: `${m.meshSlug} · you are @${m.displayName}` }))),
      S.unread.get(m.meshId) ? h("span.count", { title: "unread messages in your topics", text: String(S.unread.get(m.meshId)), "data-testid": "mesh-unread" }) : null,
      h("span.badge", { text: m.role }),
      meshActions(m))));
}

// meshActions are the mesh administration routes, shown when the served
// contract has them (api.loadContract): rename and archive for admins,
// leave for everyone but the owner (who archives instead).
function meshActions(m) {
  const f = S.features || {};
  const act = (label, fn, id) => h("button.btn.ghost.small", { type: "button", "data-testid": id, onclick: (e) => (e.preventDefault(), fn()) }, label);
  const acts = [];
  if (f.rename && m.role === "admin") acts.push(act("Rename", () => renameMesh(m), "rename-mesh"));
  if (f.archive && m.role === "admin") acts.push(act("Archive", () => archiveMesh(m), "archive-mesh"));
  if (f.leave && !m.owner) acts.push(act("Leave", () => leaveMesh(m), "leave-mesh"));
  return acts.length ? h("div.row.mesh-actions", {}, acts) : null;
}

// renameMesh: PATCH /v1/meshes/{id} {name}; the slug stays.
async function renameMesh(m) {
  const fd = await formDialog("Rename mesh", [field("Name", h("input", { name: "name", value: m.meshName, required: true, maxlength: 100 }), `The slug stays ${m.meshSlug}.`)], "Rename");
  if (!fd) return;
  try {
    const mesh = await api.userCall("PATCH", `/v1/meshes/${m.meshId}`, { name: fd.get("name").trim() });
    toast(["Renamed to ", ut(mesh.name)]);
    render();
  } catch (ex) {
    toast(ex.message, "error");
  }
}

// archiveMesh: POST /v1/meshes/{id}/archive ends every credential, stream
// and peer connection of the mesh, the owner's included; nothing is deleted.
async function archiveMesh(m) {
  if (!(await confirmDialog(["Archive ", ut(m.meshName), "?"], "Every member, API key and live connection loses access, yours included. The history is kept but nobody can read it through the broker any more.", "Archive mesh"))) return;
  try {
    await api.userCall("POST", `/v1/meshes/${m.meshId}/archive`);
    S.ctx.get(m.meshId)?.endForGood("mesh_archived");
    S.ctx.delete(m.meshId);
    toast(["Archived ", ut(m.meshName)]);
    render();
  } catch (ex) {
    toast(ex.message, "error");
  }
}

// leaveMesh: POST /v1/meshes/{id}/leave revokes every member of the user
// in the mesh. The last admins must name a successor (409 last_admin).
async function leaveMesh(m, successorMemberId) {
  if (!successorMemberId && !(await confirmDialog(["Leave ", ut(m.meshName), "?"], "Your members there and their keys are revoked. You will need a new invite to come back.", "Leave mesh"))) return;
  try {
    await api.userCall("POST", `/v1/meshes/${m.meshId}/leave`, successorMemberId ? { successorMemberId } : {});
  } catch (ex) {
    if (ex.code === "owner_member") return toast("You own this mesh, so you cannot leave it; archive it instead.", "error");
    if (ex.code !== "last_admin" || successorMemberId) return toast(ex.message, "error");
    return pickSuccessor(m);
  }
  S.ctx.get(m.meshId)?.endForGood("credential_revoked");
  S.ctx.delete(m.meshId);
  toast(["You left ", ut(m.meshName)]);
  go("#/");
}

async function pickSuccessor(m) {
  let others;
  try {
    const ctx = await meshCtx(m.meshId);
    others = (await ctx.list("/v1/members")).filter((x) => x.userId !== api.auth.user.id);
  } catch (ex) {
    return toast(ex.message, "error");
  }
  if (!others.length) return toast("You are the only member left: archive the mesh instead.", "error");
  const fd = await formDialog("Name the next admin", [
    h("p", { text: "You are the last admin. Someone who stays must become admin before you leave." }),
    field("New admin", h("select", { name: "successor" }, others.map((x) => h("option", { value: x.id }, `@${x.displayName}`)))),
  ], "Make admin and leave");
  if (fd) leaveMesh(m, fd.get("successor"));
}

// ---- joining with an invite ----
const INVITE_WORDS = {
  invite_not_found: "This invite does not exist. Check the link, or ask for a new one.",
  invite_expired: "This invite has expired. Ask an admin of the mesh for a new one.",
  invite_used_up: "This invite has been used up. Ask an admin of the mesh for a new one.",
  invite_revoked: "This invite was revoked by an admin of the mesh. Ask for a new one.",
  mesh_archived: "This mesh has been archived; nobody can join it any more.",
  display_name_taken: "Someone in this mesh already has that display name. Pick another.",
};

async function joinView() {
  const token = S.pendingInvite || sessionStorage.getItem("claudemesh.invite");
  if (!token) return go("#/");
  const suggested = (api.auth.user.name || api.auth.user.email.split("@")[0]).toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 64) || "me";
  const err = h("p.form-error", { role: "alert", "data-testid": "join-error" });
  const about = h("p.muted", { text: "A new identity key is made in this browser and kept only here. Choose how others mention you." });
  const title = h("h1", { text: "Join a mesh" });
  const submit = h("button.btn.primary", { type: "submit", "data-testid": "join-submit" }, "Join mesh");
  const refused = (ex) => {
    err.textContent = INVITE_WORDS[ex.code] || ex.message;
    submit.disabled = !!INVITE_WORDS[ex.code] && ex.code !== "display_name_taken";
  };
  const form = h("form.card.auth", {
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      submit.disabled = true;
      try {
        await cx.ready;
        const identity = cx.newIdentity();
        const displayName = new FormData(form).get("displayName");
        // With the user's token the broker links the new member to the
        // account: it appears in GET /v1/me and gets member sessions.
        const res = await api.userCall("POST", "/v1/join", { token, pubkey: identity.pubkey, displayName });
        await store.putIdentity(api.auth.user.id, res.mesh.id, res.member.id, identity);
        sessionStorage.removeItem("claudemesh.invite");
        S.pendingInvite = null;
        await loadMeshes();
        if (!S.meshes.some((m) => m.meshId === res.mesh.id)) throw new Error("The broker did not link this membership to your account.");
        toast(["Joined ", ut(res.mesh.name)]);
        go(`#/m/${res.mesh.id}/t/general`);
      } catch (ex) {
        refused(ex);
        if (!INVITE_WORDS[ex.code]) submit.disabled = false;
      }
    },
  },
  title, about,
  field("Display name", h("input", { name: "displayName", value: suggested, required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", autocomplete: "off" }), "lower-case letters, digits, - and _"),
  err,
  h("div.row.end", {}, h("a.btn.ghost", { href: "#/" }, "Cancel"), submit));
  shell(null, h("div.center", {}, form));
  // The public preview spends nothing: say what the invite opens, or why
  // it no longer does, before anyone types a name.
  try {
    const p = await api.request("GET", `/v1/invites/${encodeURIComponent(token)}`);
    mount(title, "Join ", ut(p.meshName));
    mount(about, p.inviterDisplayName ? ["@", ut(p.inviterDisplayName), " invited you"] : "You are invited",
      ` as ${p.role}. A new identity key is made in this browser and kept only here. Choose how others mention you.`);
  } catch (ex) {
    if (INVITE_WORDS[ex.code]) refused(ex);
  }
}

// ---- boot ----
api.auth.onSignedOut = () => {
  for (const c of S.ctx.values()) c.stopLive();
  S.ctx.clear();
  S.meshes = [];
  render();
};
window.addEventListener("hashchange", render);
// A calm, page-wide note while the broker's database is unreachable; the
// requests behind it are retrying (api.request).
const dbNote = h("div.db-note", { role: "status", hidden: true, "data-testid": "db-down" }, h("span.spinner"), "Connection to the server's database lost, retrying…");
document.body.append(dbNote);
api.db.onChange = (down) => {
  dbNote.hidden = !down;
};
async function boot() {
  mount(app, h("div.center", {}, loading("Starting")));
  try {
    S.features = await api.loadContract();
  } catch (e) {
    // Never stuck on "Starting…": say what failed and offer a retry.
    return mount(app, h("div.center", {}, errorBox(e, boot)));
  }
  if (api.hasStoredSession()) {
    try {
      await api.refresh();
      await loadMeshes();
    } catch {
      /* signed out: show the sign-in form */
    }
  }
  render();
}
boot();
