// hostile.mjs — the dashboard against what a hostile or careless member can
// put in front of others, driven by web/hostile_test.go (which starts the
// broker and connects a peer with long fields over /ws).
// Env: BASE, PW_DIR, CHROMIUM, PEER (the peer's fields, JSON), SHOTS_DIR
// (optional: keep screenshots of every view checked).
// Protocol: JSON lines on stdout; a line with "need" waits for a line on
// stdin. Checks do not stop the run: each failure is collected, and the last
// line is {"done": true, "ok": …, "failures": […], "checked": n}.
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";

const { chromium } = createRequire(join(process.env.PW_DIR, "/"))("playwright-core");
const BASE = process.env.BASE;
const SHOTS = process.env.SHOTS_DIR || "";
const PEER = JSON.parse(process.env.PEER);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
async function need(what, data) {
  say({ need: what, ...data });
  const { value } = await lines.next();
  return JSON.parse(value);
}
const step = (s) => say({ step: s });
const failures = [];
let checked = 0;
const check = (ok, what) => {
  checked++;
  if (!ok) failures.push(what);
};

async function api(method, path, token, body) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const j = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}
const b64 = (s) => Buffer.from(s, "utf8").toString("base64");
const PASSWORD = "correct horse battery staple";
// An ed25519 public key in hex, for a join (the browser makes its own later).
async function pubkeyHex() {
  const { generateKeyPairSync } = await import("node:crypto");
  const jwk = generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  return Buffer.from(jwk.x, "base64url").toString("hex");
}

const b = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
async function newPage(who) {
  const ctx = await b.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: "light" });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => failures.push(`${who}: uncaught error in the page: ${e.message}`));
  page.on("dialog", (d) => {
    failures.push(`${who}: a dialog opened: ${d.message()}`);
    d.dismiss().catch(() => {});
  });
  page.setDefaultTimeout(15000);
  return { ctx, page };
}
async function signIn(page, email) {
  await page.goto(`${BASE}/`);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", PASSWORD);
  await page.click("form.auth button[type=submit]");
  await page.waitForSelector("text=Your meshes");
}

// wide: the page is no wider than the viewport, and nothing in the top bar
// or the mesh header runs off it.
async function wide(page, what) {
  const r = await page.evaluate(() => {
    const vw = document.documentElement.clientWidth;
    // What is visible of an element: its box cut by every ancestor that
    // clips (an ellipsis is fine; running off screen is not).
    const right = (e) => {
      let r = e.getBoundingClientRect().right;
      for (let a = e.parentElement; a; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== "visible") r = Math.min(r, a.getBoundingClientRect().right);
      }
      return r;
    };
    const off = [...document.querySelectorAll(".topbar *, .mesh-head *, .chat-head *")]
      .filter((e) => e.getClientRects().length && right(e) > vw + 1)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className}`);
    return { sw: document.documentElement.scrollWidth, vw, off };
  });
  check(r.sw <= r.vw, `${what}: the page is ${r.sw} px wide in a ${r.vw} px viewport`);
  check(!r.off.length, `${what}: off the right edge: ${r.off.slice(0, 5).join(", ")}`);
}

// inOrder: the characters of needle (spaces aside) inside the first element
// matching sel that contains it are laid out left to right, as in a
// left-to-right text nothing reorders.
async function inOrder(page, sel, needle, what) {
  const r = await page.evaluate(([sel, needle]) => {
    const el = [...document.querySelectorAll(sel)].find((e) => e.textContent.includes(needle));
    if (!el) return { missing: true };
    const chars = [];
    const w = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let n; (n = w.nextNode());) for (let i = 0; i < n.data.length; i++) chars.push([n, i]);
    const at = chars.map(([n, i]) => n.data[i]).join("").indexOf(needle);
    const xs = [];
    for (let k = at; k < at + needle.length; k++) {
      const [n, i] = chars[k];
      if (n.data[i] === " ") continue;
      const range = document.createRange();
      range.setStart(n, i);
      range.setEnd(n, i + 1);
      xs.push(Math.round(range.getBoundingClientRect().left));
    }
    return { xs, text: el.textContent };
  }, [sel, needle]);
  check(!r.missing, `${what}: no ${sel} contains ${JSON.stringify(needle)}`);
  if (r.missing) return r;
  const bad = r.xs.findIndex((x, i) => i > 0 && x <= r.xs[i - 1]);
  check(bad < 0, `${what}: ${JSON.stringify(needle)} is reordered on screen (x positions ${r.xs.join(",")})`);
  return r;
}

const shot = async (page, name) => SHOTS && page.screenshot({ path: join(SHOTS, `${name}.png`) });

try {
  // ---- the data: every name as long as the broker takes, no spaces ----
  step("ada and grace sign up; ada creates meshes with long and non-Latin names");
  const adaName = `Ada${"Lovelace_".repeat(10)}`;
  const ada = await api("POST", "/v1/auth/signup", null, { email: "ada@example.com", password: PASSWORD, name: adaName });
  const grace = await api("POST", "/v1/auth/signup", null, { email: "grace@example.com", password: PASSWORD, name: `Grace${"Hopper".repeat(15)}` });
  const meshName = `Platform${"Teamwithoutspaces".repeat(5)}`;
  const mesh = (await api("POST", "/v1/meshes", ada.accessToken, { name: meshName })).mesh;
  for (const name of ["Команда", "チーム", "チーム"]) await api("POST", "/v1/meshes", ada.accessToken, { name });
  const meshId = mesh.id;
  const invite = (await api("POST", `/v1/meshes/${meshId}/invites`, ada.accessToken, { role: "member", maxUses: 5, expiresInSeconds: 3600 })).token;
  const graceName = `grace${"x".repeat(59)}`;
  await api("POST", "/v1/join", grace.accessToken, { token: invite, pubkey: await pubkeyHex(), displayName: graceName });
  await need("peer", { meshId, invite });

  step("ada posts plaintext (v1) bodies: a long one, a right-to-left override, a mention of grace");
  const adaTok = (await api("POST", `/v1/meshes/${meshId}/session`, ada.accessToken, {})).token;
  const longBody = "Body_without_any_space_".repeat(60);
  const rlo = "see x\u202Egnp.exe following text";
  const mention = `@${graceName} ${"Mention_without_space_".repeat(20)}`;
  for (const text of [longBody, rlo, mention]) await api("POST", "/v1/messages", adaTok, { topic: "general", bodyVersion: 1, ciphertext: b64(text) });
  const topicName = `t${"0123456789".repeat(4)}abcdefghi`;
  await api("POST", "/v1/topics", adaTok, { name: topicName, description: "Description_without_space_".repeat(19), visibility: "public" });
  await api("POST", "/v1/messages", adaTok, { topic: topicName, bodyVersion: 1, ciphertext: b64(longBody) });

  // ---- D1: any address leads to a view ----
  step("addresses the page cannot read lead to a view, never a stuck 'Starting…'");
  const A = await newPage("ada");
  await signIn(A.page, "ada@example.com");
  const notFound = "[data-testid=not-found]";
  const fragments = [
    ["#/m/%E0%A4%A", notFound], ["#%E0%A4%A", notFound], ["#/%", notFound], ["#/join/%ZZ", notFound], ["#/inbox/%E0", notFound],
    ["#/nowhere", notFound], [`#/m/${meshId}/t/%E0%A4%A`, notFound], ["#/%00", notFound], ["#/<img src=x onerror=alert(1)>", notFound],
    ["#/../../etc/passwd", notFound], [`#/m/${"%41".repeat(30000)}`, notFound], [`#${"a".repeat(200000)}`, notFound],
    [`#/m/${"x".repeat(600)}`, notFound], [`#/join/${"x".repeat(5000)}`, notFound],
    ["#/m/00000000-0000-0000-0000-000000000000", ".state.error >> text=not in your list"],
    [`#/m/${meshId}/t/nosuchtopic`, "text=#nosuchtopic not found"],
    [`#/m/${meshId}/zzz`, ".split"], ["#", "[data-testid=mesh-card]"], ["#/", "[data-testid=mesh-card]"],
  ];
  for (const [frag, want] of fragments) {
    const label = frag.length > 60 ? `${frag.slice(0, 40)}… (${frag.length} chars)` : frag;
    await A.page.goto("about:blank");
    await A.page.goto(`${BASE}/${frag}`);
    const ok = await A.page.waitForSelector(want, { timeout: 10000 }).then(() => true, () => false);
    check(ok, `opening ${label}: no ${want} within 10 s; the page shows: ${(await A.page.locator("#app").innerText()).slice(0, 120)}`);
  }
  // The same through a hash change on a page already open.
  await A.page.goto(`${BASE}/#/`);
  await A.page.waitForSelector("[data-testid=mesh-card]");
  await A.page.evaluate(() => { location.hash = "#/m/%E0%A4%A"; });
  const shown = await A.page.waitForSelector(notFound, { timeout: 10000 }).then(() => true, () => false);
  check(shown, "hash change to #/m/%E0%A4%A: no not-found view");
  if (shown) {
    await A.page.click(`${notFound} >> text=Go to your meshes`);
    check(await A.page.waitForSelector("[data-testid=mesh-card]").then(() => true, () => false), "not-found view: the way home does not lead home");
  }
  // Signed out, a malformed address shows the sign-in form.
  const anon = await newPage("anonymous");
  await anon.page.goto(`${BASE}/#/m/%E0%A4%A`);
  check(await anon.page.waitForSelector("form.auth", { timeout: 10000 }).then(() => true, () => false), "signed out, #/m/%E0%A4%A: no sign-in form");
  await anon.ctx.close();

  // ---- D2 and D4: every view at two widths ----
  const G = await newPage("grace");
  await signIn(G.page, "grace@example.com");
  const views = [
    [A, "meshes", "#/", "[data-testid=mesh-card] >> text=komanda"],
    [A, "general", `#/m/${meshId}/t/general`, "[data-testid=message-body] >> text=following text"],
    [A, "topic", `#/m/${meshId}/t/${topicName}`, ".chat-head .topic-desc, .chat-head small"],
    [A, "peers", `#/m/${meshId}/peers`, `[data-testid=peers] >> text=@${PEER.DisplayName}`],
    [A, "members", `#/m/${meshId}/members`, `[data-testid=members] >> text=@${graceName}`],
    [A, "invites", `#/m/${meshId}/invites`, "[data-testid=invites]"],
    [G, "mesh-inbox", `#/m/${meshId}/inbox`, "[data-testid=notifications] >> text=Mention_without_space"],
    [G, "inbox", "#/inbox", "[data-testid=my-notifications] >> text=Mention_without_space"],
  ];
  for (const width of [1280, 390]) {
    step(`long unbroken text at ${width} px`);
    for (const { page } of [A, G]) await page.setViewportSize({ width, height: 844 });
    for (const [who, name, hash, ready] of views) {
      await who.page.goto(`${BASE}/${hash}`);
      const ok = await who.page.waitForSelector(ready).then(() => true, () => false);
      check(ok, `${name} at ${width}: ${ready} never showed`);
      await who.page.waitForTimeout(200); // layout settles after the last paint
      await wide(who.page, `${name} at ${width} px`);
      await shot(who.page, `hostile-${name}-${width}`);
    }
  }

  step("a right-to-left override in a body reorders nothing after it");
  await A.page.setViewportSize({ width: 1280, height: 800 });
  await A.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await A.page.waitForSelector("[data-testid=message-body] >> text=following text");
  const r = await inOrder(A.page, "[data-testid=message-body]", "gnp.exe following text", "chat body");
  check(r.text?.includes("\u202E"), "the body lost its U+202E: bodies keep the sender's characters");
  check(await A.page.locator("[data-testid=message-body] .bidi-ctl[data-cp='U+202E']").count() === 1, "the override is not shown as a U+202E mark");
  await inOrder(A.page, ".msg-main", "following text", "the text after the override");

  step("the inboxes show a plaintext (v1) mention as text, marked unencrypted");
  await G.page.setViewportSize({ width: 1280, height: 800 });
  for (const hash of ["#/inbox", `#/m/${meshId}/inbox`]) {
    await G.page.goto(`${BASE}/${hash}`);
    await G.page.waitForSelector("text=Mention_without_space", { timeout: 10000 }).catch(() => {});
    const txt = await G.page.locator("#app").innerText();
    check(txt.includes("Mention_without_space"), `${hash}: the v1 mention's text is not shown`);
    check(!txt.includes("Encrypted — open the topic"), `${hash}: a plaintext v1 mention is labelled "Encrypted — open the topic"`);
    check(txt.includes("unencrypted"), `${hash}: the v1 mention is not marked unencrypted`);
  }
  step("the create form takes a slug; one already taken is refused in words");
  await A.page.goto(`${BASE}/#/`);
  await A.page.waitForSelector("[data-testid=mesh-card]");
  await A.page.fill("input[name=name]", "チーム");
  await A.page.fill("[data-testid=mesh-slug]", "tokyo-team");
  await A.page.click("text=Create mesh");
  await A.page.waitForSelector(".topic[aria-current=page] >> text=general");
  await A.page.goto(`${BASE}/#/`);
  check(await A.page.waitForSelector("[data-testid=mesh-card] >> text=tokyo-team").then(() => true, () => false), "the chosen slug is not on the mesh card");
  await A.page.fill("input[name=name]", "Other");
  await A.page.fill("[data-testid=mesh-slug]", "tokyo-team");
  await A.page.click("text=Create mesh");
  check(await A.page.waitForSelector('.toast.error >> text=slug "tokyo-team"').then(() => true, () => false), "a taken slug is not refused in words");
  say({ done: true, ok: true, failures, checked });
} catch (e) {
  say({ done: true, ok: false, error: `${e?.stack || e}`, failures, checked });
} finally {
  await b.close().catch(() => {});
  process.exit(0);
}
