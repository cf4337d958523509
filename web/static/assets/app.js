// app.js — boot, routing (by URL fragment: #/…), the shell and the account
// and mesh-list views. Mesh views are in views.js.
import * as api from "./api.js";
import { MeshCtx } from "./mesh.js";
import * as cx from "./crypto.js";
import * as store from "./store.js";
import { h, mount, loading, empty, errorBox, toast, field, formDialog, confirmDialog } from "./ui.js";
import { meshView, crossMeshInbox } from "./views.js";

const app = document.getElementById("app");
export const S = { features: null, meshes: [], ctx: new Map(), cleanup: [], pendingInvite: null };

// ---- routing ----
function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "join" && parts[1]) {
    // The invite token rides in the fragment (never sent to a server, no
    // Referer); keep it in this tab only and take it out of the address bar.
    S.pendingInvite = parts[1];
    sessionStorage.setItem("claudemesh.invite", parts[1]);
    history.replaceState(null, "", "#/join");
    return { name: "join" };
  }
  if (parts[0] === "join") return { name: "join" };
  if (parts[0] === "inbox") return { name: "inbox" };
  if (parts[0] === "m" && parts[1]) return { name: "mesh", meshId: parts[1], tab: parts[2] || "t", arg: parts[3] };
  return { name: "meshes" };
}

export const go = (hash) => {
  if (location.hash === hash) render();
  else location.hash = hash;
};

async function render() {
  for (const fn of S.cleanup.splice(0)) fn();
  const r = route();
  if (!api.auth.user) return authView(r);
  // One live stream at a time: the mesh on screen (a browser allows only a
  // few connections per host). Another mesh resumes from its last seq.
  for (const [id, c] of S.ctx) if (r.name !== "mesh" || id !== r.meshId) c.stopLive();
  try {
    if (r.name === "join") return await joinView();
    if (r.name === "inbox" && S.features.inbox) return crossMeshInbox(shell);
    if (r.name === "mesh") {
      const ctx = await meshCtx(r.meshId);
      if (!ctx) return shell(null, errorBox(new Error("This mesh is not in your list. Ask for an invite, or pick another mesh."), () => go("#/")));
      return meshView(ctx, r, { shell, S, go });
    }
    return await meshesView();
  } catch (e) {
    shell(null, errorBox(e, render));
  }
}

// ---- shell ----
function shell(ctx, ...content) {
  const meshes = S.meshes;
  const switcher = meshes.length
    ? h("select.mesh-switch", { "aria-label": "Mesh", onchange: (e) => go(e.target.value ? `#/m/${e.target.value}` : "#/") },
      h("option", { value: "" }, "All meshes"),
      meshes.map((m) => h("option", { value: m.meshId, selected: ctx?.id === m.meshId }, m.meshName)))
    : null;
  mount(app,
    h("header.topbar", {},
      h("a.brand", { href: "#/", "aria-label": "claudemesh home" }, h("span.logo", { "aria-hidden": "true" }), h("span.brand-name", { text: "claudemesh" })),
      switcher,
      h("div.spacer"),
      S.features?.inbox ? h("a.btn.ghost", { href: "#/inbox" }, "Inbox") : null,
      h("span.who", { title: api.auth.user.email }, api.auth.user.name),
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
export async function loadMeshes() {
  const me = await api.userCall("GET", "/v1/me");
  const local = await store.listMemberships(me.user.id);
  const byId = new Map();
  for (const m of me.memberships) byId.set(m.meshId, { ...m, linked: true });
  for (const m of local) if (!byId.has(m.meshId)) byId.set(m.meshId, m);
  S.meshes = [...byId.values()].sort((a, b) => a.meshName.localeCompare(b.meshName));
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
      const name = new FormData(createForm).get("name").trim();
      if (!name) return;
      try {
        const res = await api.userCall("POST", "/v1/meshes", { name });
        await loadMeshes();
        toast(`Created ${res.mesh.name}`);
        go(`#/m/${res.mesh.id}/t/general`);
      } catch (ex) {
        toast(ex.message, "error");
      }
    },
  },
  h("h2", { text: "New mesh" }),
  h("div.row", {}, h("input", { name: "name", placeholder: "Platform team", "aria-label": "Mesh name", maxlength: 100, required: true }),
    h("button.btn.primary", { type: "submit" }, "Create mesh")));
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
  } catch (e) {
    return mount(list, errorBox(e, render));
  }
  if (!S.meshes.length) {
    return mount(list, empty("No meshes yet", "Create a mesh for your team, or join one with an invite link."));
  }
  mount(list, S.meshes.map((m) =>
    h("div.card.mesh-card", { "data-testid": "mesh-card" },
      h("a.mesh-link", { href: `#/m/${m.meshId}/t/general` },
        h("div.mesh-icon", { "aria-hidden": "true", text: m.meshName.slice(0, 1).toUpperCase() }),
        h("div", {}, h("strong", { text: m.meshName }), h("small.muted", { text: `${m.meshSlug} · you are @${m.displayName}` }))),
      h("span.badge", { text: m.role }),
      meshActions(m))));
}

// meshActions are the #12 mesh routes, shown only when the served contract
// has them (api.loadContract): rename and archive for admins, leave for
// linked members.
function meshActions(m) {
  const f = S.features || {};
  const act = (label, fn) => h("button.btn.ghost.small", { type: "button", onclick: (e) => (e.preventDefault(), fn()) }, label);
  const acts = [];
  if (f.rename && m.role === "admin") acts.push(act("Rename", () => renameMesh(m)));
  if (f.archive && m.role === "admin") {
    acts.push(act("Archive", async () => {
      if (!(await confirmDialog(`Archive ${m.meshName}?`, "Every member loses access and live connections close. History is kept.", "Archive mesh"))) return;
      const [method, path] = f.archive.split(" ");
      await api.userCall(method, path.replace("{}", m.meshId)).then(render, (ex) => toast(ex.message, "error"));
    }));
  }
  if (f.leave && m.linked) {
    acts.push(act("Leave", async () => {
      if (!(await confirmDialog(`Leave ${m.meshName}?`, "You will need a new invite to come back.", "Leave mesh"))) return;
      await api.userCall("POST", `/v1/meshes/${m.meshId}/leave`).then(render, (ex) => toast(ex.message, "error"));
    }));
  }
  return acts.length ? h("div.row", {}, acts) : null;
}

// renameMesh is switched on by PATCH /v1/meshes/{id} in the served contract.
async function renameMesh(m) {
  const fd = await formDialog("Rename mesh", [field("Name", h("input", { name: "name", value: m.meshName, required: true, maxlength: 100 }))], "Rename");
  if (!fd) return;
  try {
    await api.userCall("PATCH", `/v1/meshes/${m.meshId}`, { name: fd.get("name") });
    render();
  } catch (ex) {
    toast(ex.message, "error");
  }
}

// ---- joining with an invite ----
async function joinView() {
  const token = S.pendingInvite || sessionStorage.getItem("claudemesh.invite");
  if (!token) return go("#/");
  const suggested = (api.auth.user.name || api.auth.user.email.split("@")[0]).toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 64) || "me";
  const err = h("p.form-error", { role: "alert" });
  const form = h("form.card.auth", {
    onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      try {
        await cx.ready;
        const identity = cx.newIdentity();
        const displayName = new FormData(form).get("displayName");
        // The user's bearer goes along: brokers that link invite joins to
        // the user account (issue #12) make this a normal membership.
        const res = await api.request("POST", "/v1/join", { token: api.auth.access, body: { token, pubkey: identity.pubkey, displayName } });
        const uid = api.auth.user.id;
        await store.putIdentity(uid, res.mesh.id, res.member.id, identity);
        if (res.member.userId !== uid) {
          // Unlinked member: this browser keeps its API key (IndexedDB only).
          await store.putMembership(uid, { userId: uid, meshId: res.mesh.id, meshName: res.mesh.name, meshSlug: res.mesh.slug,
            memberId: res.member.id, displayName: res.member.displayName, role: res.member.role, apiKey: res.apiKey.key });
        }
        sessionStorage.removeItem("claudemesh.invite");
        S.pendingInvite = null;
        await loadMeshes();
        toast(`Joined ${res.mesh.name}`);
        go(`#/m/${res.mesh.id}/t/general`);
      } catch (ex) {
        err.textContent = ex.code === "invite_not_found" ? "This invite does not exist." :
          ex.code === "invite_expired" ? "This invite has expired." : ex.code === "invite_used_up" ? "This invite has been used up." : ex.message;
        btn.disabled = false;
      }
    },
  },
  h("h1", { text: "Join a mesh" }),
  h("p.muted", { text: "A new identity key is made in this browser and kept only here. Choose how others mention you." }),
  field("Display name", h("input", { name: "displayName", value: suggested, required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", autocomplete: "off" }), "lower-case letters, digits, - and _"),
  err,
  h("div.row.end", {}, h("a.btn.ghost", { href: "#/" }, "Cancel"), h("button.btn.primary", { type: "submit", "data-testid": "join-submit" }, "Join mesh")));
  shell(null, h("div.center", {}, form));
}

// ---- boot ----
api.auth.onSignedOut = () => {
  for (const c of S.ctx.values()) c.stopLive();
  S.ctx.clear();
  S.meshes = [];
  render();
};
window.addEventListener("hashchange", render);
(async () => {
  mount(app, h("div.center", {}, loading("Starting")));
  S.features = await api.loadContract();
  if (api.hasStoredSession()) {
    try {
      await api.refresh();
      await loadMeshes();
    } catch {
      /* signed out: show the sign-in form */
    }
  }
  render();
})();
