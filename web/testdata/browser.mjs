// browser.mjs — the dashboard's acceptance run in real Chromium, driven by
// web/browser_test.go (which starts the broker and checks the database).
// Env: BASE (broker URL), PW_DIR (where playwright-core is installed),
// CHROMIUM, SHOTS_DIR (optional: write the README screenshots there).
// Protocol with the Go test: JSON lines on stdout; a line with "need" waits
// for one line on stdin. The last line is {"done": true, …}.
import { createRequire } from "node:module";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const { chromium } = createRequire(join(process.env.PW_DIR, "/"))("playwright-core");
const BASE = process.env.BASE;
const SHOTS = process.env.SHOTS_DIR || "";
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
async function need(what, data) {
  say({ need: what, ...data });
  const { value } = await lines.next();
  return JSON.parse(value);
}
const step = (s) => say({ step: s });

const consoleErrors = [], requests = [];
let phase = "main";
const b = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"], // playwright gives every launch a fresh temporary profile
});

const users = new Map(); // name → page, for screenshots of a failed run
async function newUser(name, width = 1280) {
  const ctx = await b.newContext({ viewport: { width, height: 800 }, colorScheme: "light" });
  // The test shortens the re-seal cycle the documented way; the topic
  // header shows the override.
  await ctx.addInitScript(() => localStorage.setItem("claudemesh.resealSeconds", "2"));
  ctx.on("request", (r) => requests.push({ who: name, method: r.method(), url: r.url() }));
  const page = await ctx.newPage();
  users.set(name, page);
  // The answers of GET /v1/me and POST /v1/join, to check that an invite
  // join is linked to the account.
  const seen = { me: null, join: null };
  page.on("response", async (r) => {
    const path = new URL(r.url()).pathname;
    if ((path === "/v1/me" || path === "/v1/join") && r.ok()) seen[path.slice(4)] = await r.json().catch(() => null);
  });
  page.on("console", (m) => m.type() === "error" && consoleErrors.push({ who: name, phase, text: m.text(), url: m.location()?.url || "" }));
  page.on("pageerror", (e) => consoleErrors.push({ who: name, phase, text: `pageerror: ${e.message}` }));
  page.setDefaultTimeout(30000);
  return { ctx, page, seen };
}

async function signup(page, name, email) {
  await page.goto(`${BASE}/`);
  await page.getByRole("tab", { name: "Create account" }).click();
  await page.fill("input[name=name]", name);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", "correct horse battery staple");
  await page.click("form.auth button[type=submit]");
  await page.waitForSelector("text=Your meshes");
}

// Screenshots wait for passing toasts to go (they last 4 s).
const noToasts = (page) => page.waitForFunction(() => !document.querySelector(".toast"), null, { timeout: 6000 });
const bodies = (page) => page.locator("[data-testid=message-body]").allTextContents();
// send types a message and presses Enter once the previous send is done
// (its message may come back over the stream before the post answers).
async function send(page, text) {
  await page.waitForSelector("form.composer button[type=submit]:not([disabled])");
  await page.fill("[data-testid=composer]", text);
  await page.keyboard.press("Enter");
}
async function waitBody(page, text, timeout = 20000) {
  await page.locator("[data-testid=message-body]", { hasText: text }).first().waitFor({ timeout });
}

try {
  // ---- context 1: sign up, create a mesh, see #general ----
  step("ada signs up and creates a mesh");
  const ada = await newUser("ada");
  await signup(ada.page, "Ada", "ada@example.com");
  await ada.page.waitForSelector("text=No meshes yet");
  await ada.page.fill("input[name=name]", "Platform Team");
  await ada.page.click("text=Create mesh");
  await ada.page.waitForSelector(".topic[aria-current=page] >> text=general");
  const meshId = ada.page.url().split("#/m/")[1].split("/")[0];

  // ---- mint an invite ----
  step("ada mints an invite");
  await ada.page.click("a.tab >> text=Invites");
  await ada.page.fill("input[name=maxUses]", "5");
  await ada.page.click("[data-testid=mint-invite]");
  const link = await ada.page.textContent("[data-testid=invite-link]");
  const cli = await ada.page.textContent("[data-testid=invite-cli]");
  if (!link.startsWith(`${BASE}/#/join/`) || !cli.startsWith("claudemesh join ") || !link.endsWith(cli.split(" ")[2])) throw new Error(`bad invite lines: ${link} | ${cli}`);
  const token = link.split("#/join/")[1];
  await need("peer", { meshId, invite: token }); // a Claude Code peer joins over /ws

  // ---- context 2: sign up and join with the invite link ----
  step("grace signs up and joins with the link");
  const grace = await newUser("grace");
  await signup(grace.page, "Grace", "grace@example.com");
  await grace.page.goto(link);
  await grace.page.waitForSelector("h1 >> text=Join Platform Team"); // the invite preview
  if (grace.page.url().includes(token)) throw new Error("the invite token stayed in the address bar");
  await grace.page.click("[data-testid=join-submit]");
  await grace.page.waitForSelector(".topic[aria-current=page] >> text=general");
  await grace.page.waitForSelector("[data-testid=key-state] >> text=not keyed yet");

  step("grace's membership is linked: it comes from /v1/me and member sessions, and no API key is kept");
  const joined = grace.seen.join;
  if (!joined || joined.member.userId !== grace.seen.me?.user?.id) throw new Error(`the join was not linked to grace: ${JSON.stringify(joined?.member)}`);
  if (!grace.seen.me.memberships.some((m) => m.meshId === meshId && m.memberId === joined.member.id)) throw new Error("grace's mesh is not in GET /v1/me");
  if (!requests.some((r) => r.who === "grace" && r.method === "POST" && r.url === `${BASE}/v1/meshes/${meshId}/session`)) throw new Error("grace did not use a member session");
  const stores = await grace.page.evaluate(() => new Promise((resolve, reject) => {
    const q = indexedDB.open("claudemesh");
    q.onsuccess = () => resolve([...q.result.objectStoreNames]);
    q.onerror = () => reject(q.error);
  }));
  if (stores.join() !== "identities") throw new Error(`IndexedDB holds ${stores}; want only identities`);

  // ---- context 1 posts: the first post keys #general ----
  step("ada posts the first encrypted message");
  await ada.page.evaluate(() => localStorage.setItem("claudemesh.resealSeconds", "300")); // hold the seal back for a moment
  await ada.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await ada.page.waitForSelector("[data-testid=key-state][data-cycles] >> text=not keyed yet"); // its first re-seal cycle is over
  const first = "Deploy window opens at 14:00, @grace please watch the canary";
  await send(ada.page, first);
  await waitBody(ada.page, "Deploy window opens");
  await ada.page.waitForSelector("[data-testid=key-state] >> text=end-to-end encrypted");

  step("grace waits for the key; nothing is shown in plaintext");
  await grace.page.waitForSelector("[data-testid=waiting-key]");
  await grace.page.waitForSelector("text=Encrypted — waiting for a member to share the key");
  if ((await bodies(grace.page)).length) throw new Error("grace saw a body before holding the key");
  if (SHOTS) {
    await noToasts(grace.page);
    await grace.page.screenshot({ path: join(SHOTS, "waiting-1280.png") });
  }

  step("ada's re-seal cycle shares the key within one cycle");
  await ada.page.evaluate(() => localStorage.setItem("claudemesh.resealSeconds", "2"));
  await ada.page.click("a.tab >> text=Members");
  await ada.page.waitForSelector("[data-testid=members]");
  const t0 = Date.now();
  await ada.page.click("a.tab >> text=Topics");
  await ada.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await waitBody(grace.page, "Deploy window opens", 15000);
  const sealMs = Date.now() - t0;
  await grace.page.waitForSelector("[data-testid=key-state] >> text=end-to-end encrypted");

  step("ada posts again; grace sees it live");
  const second = "Canary is green, rolling out to 100% now";
  await send(ada.page, second);
  await waitBody(grace.page, "Canary is green", 15000);
  await send(grace.page, "Thanks @ada, watching the dashboards");
  await waitBody(ada.page, "watching the dashboards", 15000);

  step("notifications: grace was mentioned");
  await grace.page.click("a.tab >> text=Inbox");
  await grace.page.waitForSelector("[data-testid=notifications] >> text=Deploy window opens");
  await grace.page.waitForSelector("[data-testid=inbox-count] >> text=1");
  await grace.page.click("[data-testid=notifications] >> text=Mark read");
  await grace.page.waitForSelector("text=Notifications (0 unread)");
  await grace.page.waitForSelector("[data-testid=inbox-count]", { state: "hidden" });

  step("a reload stays signed in (the refresh token rotates) and keeps the browser's key");
  await grace.page.reload();
  await grace.page.waitForSelector("text=Notifications (0 unread)");
  await grace.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await waitBody(grace.page, "Canary is green");

  step("a stream end that says reconnect: the page says why, backs off and resumes");
  await grace.page.waitForSelector(".live-dot[data-state=live]");
  // Each of these ends the next stream connection once, as the broker would.
  const ends = [{ reason: "server_shutdown", reconnect: true }, { reason: "credential_expired", reconnect: false }];
  const streamRoute = /\/stream\?/;
  await grace.ctx.route(streamRoute, (route) => (ends.length
    ? route.fulfill({ status: 200, headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
      body: `retry: 3000\nevent: end\ndata: ${JSON.stringify(ends.shift())}\n\n` })
    : route.continue()));
  await grace.page.goto(`${BASE}/#/`); // leaving the mesh closes its stream
  await grace.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await grace.page.waitForSelector("[data-testid=live-banner][data-reason=server_shutdown] >> text=The server is restarting. Reconnecting to live updates");
  // An expired member session is renewed, not the end of the stream.
  await grace.page.waitForSelector("[data-testid=live-banner][data-reason=credential_expired] >> text=Your session for this mesh expired. Reconnecting");
  await grace.page.waitForSelector(".live-dot[data-state=live]");
  await grace.page.waitForSelector("[data-testid=live-banner]", { state: "hidden" });
  await grace.ctx.unroute(streamRoute);
  const resumes = requests.filter((r) => r.who === "grace" && new URL(r.url).pathname === "/stream" && new URL(r.url).searchParams.has("since"));
  if (resumes.length < 3) throw new Error("the stream was not resumed with ?since= after the end");

  step("peers: a status change arrives live");
  await ada.page.click("a.tab >> text=Peers");
  await ada.page.waitForSelector("[data-testid=peers] >> text=running the test suite");
  await need("peer-status", {});
  await ada.page.waitForSelector("[data-testid=peers] >> text=waiting for review");

  step("cross-mesh inbox: unread counts per mesh, a mention decrypted and marked read (through a simulated database outage)");
  await grace.page.goto(`${BASE}/#/`);
  await ada.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  const mention = "@grace can you check the canary logs before 15:00?";
  await send(ada.page, mention);
  await waitBody(ada.page, "check the canary logs");
  await grace.page.reload();
  await grace.page.waitForSelector("[data-testid=mesh-card] [data-testid=mesh-unread] >> text=1");
  // The broker answers 503 database_unavailable with Retry-After while its
  // database is down; the page says so calmly and retries. Simulated here
  // for the first two inbox requests.
  let outage = 2;
  const inboxRoute = /\/v1\/me\/notifications\?/;
  await grace.ctx.route(inboxRoute, (route) => (outage-- > 0
    ? route.fulfill({ status: 503, headers: { "retry-after": "1", "content-type": "application/problem+json" },
      body: JSON.stringify({ type: "about:blank", title: "Service Unavailable", status: 503, code: "database_unavailable", detail: "the database is not answering" }) })
    : route.continue()));
  phase = "db-down";
  await grace.page.click("header >> text=Inbox");
  await grace.page.waitForSelector("[data-testid=db-down] >> text=database lost, retrying");
  await grace.page.waitForSelector("[data-testid=my-notifications] >> text=can you check the canary logs", { timeout: 15000 });
  await grace.page.waitForSelector("[data-testid=db-down]", { state: "hidden" });
  await grace.ctx.unroute(inboxRoute);
  phase = "main";
  await grace.page.waitForSelector("text=Inbox (1 unread)");
  await grace.page.waitForSelector("[data-testid=unread-topics] >> text=#general");
  if (SHOTS) {
    await noToasts(grace.page);
    await grace.page.mouse.move(0, 0);
    await grace.page.screenshot({ path: join(SHOTS, "inbox-1280.png") });
  }
  await grace.page.click("[data-testid=my-notifications] >> text=Mark read");
  await grace.page.waitForSelector("text=Inbox (0 unread)");
  await grace.page.click("[data-testid=unread-topics] >> text=Mark read");
  await grace.page.waitForSelector("[data-testid=unread-topics]", { state: "detached" });
  await grace.page.goto(`${BASE}/#/`);
  await grace.page.waitForSelector("[data-testid=mesh-card]");
  if (await grace.page.locator("[data-testid=mesh-unread]").count()) throw new Error("the mesh still shows unread messages after marking the topic read");

  step("topics: create a public topic; history pages back by cursor");
  await ada.page.click("a.tab >> text=Topics");
  await ada.page.click("[data-testid=new-topic]");
  await ada.page.fill("dialog input[name=name]", "deploys");
  await ada.page.fill("dialog input[name=description]", "Deploy announcements");
  await ada.page.click("dialog button[value=ok]");
  await ada.page.waitForSelector(".topic[aria-current=page] >> text=deploys");
  for (let i = 1; i <= 55; i++) {
    await send(ada.page, `build ${i} passed`);
    await waitBody(ada.page, `build ${i} passed`);
  }
  await grace.page.goto(`${BASE}/#/m/${meshId}/t/deploys`);
  await grace.page.waitForSelector("text=Join #deploys");
  await grace.page.waitForSelector("text=Join #deploys");
  await grace.page.click("text=Join #deploys");
  await waitBody(grace.page, "build 55 passed", 15000);
  if ((await bodies(grace.page)).length !== 50) throw new Error(`first page shows ${(await bodies(grace.page)).length} messages, want 50`);
  await grace.page.evaluate(() => { document.querySelector(".scroller").scrollTop = 0; });
  await waitBody(grace.page, "build 1 passed", 15000);
  if ((await bodies(grace.page)).length !== 55) throw new Error("scrolling up did not load the older page");

  // ---- screenshots of the main views at both widths ----
  if (SHOTS) {
    step("screenshots");
    // The README shows the product as users see it: no developer re-seal
    // override badge, no hover highlight.
    await ada.page.evaluate(() => localStorage.removeItem("claudemesh.resealSeconds"));
    for (const [w, hgt] of [[1280, 800], [390, 844]]) {
      await ada.page.setViewportSize({ width: w, height: hgt });
      await ada.page.goto(`${BASE}/#/`);
      await ada.page.waitForSelector("[data-testid=mesh-card]");
      await noToasts(ada.page);
      await ada.page.mouse.move(0, 0);
      await ada.page.screenshot({ path: join(SHOTS, `meshes-${w}.png`) });
      await ada.page.goto(`${BASE}/#/m/${meshId}/t/general`);
      await waitBody(ada.page, "watching the dashboards");
      await ada.page.waitForTimeout(300);
      await noToasts(ada.page);
      await ada.page.mouse.move(0, 0);
      await ada.page.screenshot({ path: join(SHOTS, `chat-${w}.png`) });
      if (w === 1280) {
        await ada.page.emulateMedia({ colorScheme: "dark" });
        await ada.page.screenshot({ path: join(SHOTS, "chat-dark-1280.png") });
        await ada.page.emulateMedia({ colorScheme: "light" });
      }
      await ada.page.click("a.tab >> text=Peers");
      await ada.page.waitForSelector("[data-testid=peers] >> text=build-bot");
      await noToasts(ada.page);
      await ada.page.mouse.move(0, 0);
      await ada.page.screenshot({ path: join(SHOTS, `peers-${w}.png`) });
      await ada.page.click("a.tab >> text=Invites");
      await ada.page.click("[data-testid=mint-invite]");
      await ada.page.waitForSelector("[data-testid=invite-link]");
      await noToasts(ada.page);
      await ada.page.mouse.move(0, 0);
      await ada.page.screenshot({ path: join(SHOTS, `invites-${w}.png`) });
    }
    await ada.page.setViewportSize({ width: 1280, height: 800 });
    await ada.page.evaluate(() => localStorage.setItem("claudemesh.resealSeconds", "2"));
  }

  // ---- invites: list, revoke, and a join with a revoked invite ----
  step("invites: linus opens a fresh invite, ada revokes it from the list, and his join is refused in words");
  await ada.page.goto(`${BASE}/#/m/${meshId}/invites`);
  await ada.page.waitForSelector(`[data-testid=invites] [data-prefix="${token.slice(0, 10)}"] >> text=2 of 5 used`);
  await ada.page.click("[data-testid=mint-invite]");
  const revokedLink = await ada.page.textContent("[data-testid=invite-link]");
  const revokedPrefix = revokedLink.split("#/join/")[1].slice(0, 10);
  const linus = await newUser("linus");
  await signup(linus.page, "Linus", "linus@example.com");
  await linus.page.goto(revokedLink);
  await linus.page.waitForSelector("h1 >> text=Join Platform Team"); // the preview: still good
  await ada.page.click(`[data-testid="revoke-invite-${revokedPrefix}"]`);
  await ada.page.click("[data-testid=confirm]");
  await ada.page.waitForSelector(`[data-prefix="${revokedPrefix}"][data-state=revoked]`);
  phase = "revoked-invite";
  await linus.page.click("[data-testid=join-submit]");
  await linus.page.waitForSelector("[data-testid=join-error] >> text=This invite was revoked by an admin of the mesh");
  if (!(await linus.page.locator("[data-testid=join-submit]").isDisabled())) throw new Error("join stays enabled with a revoked invite");
  await linus.page.reload(); // opened afresh, the preview says so at once
  await linus.page.waitForSelector("[data-testid=join-error] >> text=This invite was revoked by an admin of the mesh");
  phase = "main";

  step("the first invite lets linus in");
  await linus.page.goto(link);
  await linus.page.waitForSelector("h1 >> text=Join Platform Team");
  await linus.page.click("[data-testid=join-submit]");
  await linus.page.waitForSelector(".topic[aria-current=page] >> text=general");
  await linus.page.waitForSelector(".live-dot[data-state=live]");

  // ---- revoking linus ends his live stream and rotates #general's key ----
  step("ada revokes linus; his page says why its stream ended");
  await grace.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await grace.page.waitForSelector("[data-testid=messages] >> text=Canary is green");
  await ada.page.goto(`${BASE}/#/m/${meshId}/members`);
  phase = "revoked";
  await ada.page.click("[data-testid=revoke-linus]");
  await ada.page.click("[data-testid=confirm]");
  await ada.page.waitForSelector("text=Revoked @linus");
  await linus.page.waitForSelector("[data-testid=stream-ended][data-reason=credential_revoked] >> text=Your membership of this mesh was revoked", { timeout: 20000 });
  if (!(await linus.page.locator("[data-testid=composer]").isDisabled())) throw new Error("composer still enabled after revocation");
  await linus.ctx.close();
  phase = "main";

  step("key epochs: after the rotation a new post decrypts for both, and older messages still render");
  await ada.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await ada.page.waitForSelector("[data-testid=new-epoch]");
  await waitBody(ada.page, "Canary is green");
  const rotated = "Rotated: linus is out, new key from here on";
  await send(ada.page, rotated);
  await ada.page.waitForSelector(`li.msg[data-epoch="2"] >> text=${rotated}`);
  await ada.page.waitForSelector("[data-testid=key-state] >> text=end-to-end encrypted");
  await grace.page.waitForSelector(`li.msg[data-epoch="2"] [data-testid=message-body] >> text=${rotated}`, { timeout: 20000 });
  await grace.page.waitForSelector(`li.msg[data-epoch="1"] [data-testid=message-body] >> text=Canary is green`);
  const reply = "Got the new key, all quiet here";
  await send(grace.page, reply);
  await ada.page.waitForSelector(`li.msg[data-epoch="2"] [data-testid=message-body] >> text=${reply}`, { timeout: 15000 });

  step("ada starts a new key by hand (rotate-key); grace's next post claims it and her re-seal cycle shares it with ada");
  await ada.page.click("[data-testid=rotate-key]");
  await ada.page.click("[data-testid=confirm]");
  await ada.page.waitForSelector("[data-testid=new-epoch]");
  await grace.page.waitForSelector("[data-testid=new-epoch]"); // her cycle re-reads the topic
  const epoch3 = "Epoch three, keyed from grace's browser";
  await send(grace.page, epoch3);
  await grace.page.waitForSelector(`li.msg[data-epoch="3"] [data-testid=message-body] >> text=${epoch3}`);
  await ada.page.waitForSelector(`li.msg[data-epoch="3"] [data-testid=message-body] >> text=${epoch3}`, { timeout: 20000 });
  await grace.page.reload(); // a fresh page opens every epoch's seal
  for (const [epoch, text] of [[1, "Canary is green"], [2, reply], [3, epoch3]]) {
    await grace.page.waitForSelector(`li.msg[data-epoch="${epoch}"] [data-testid=message-body] >> text=${text}`);
  }

  step("ada renames the mesh");
  await ada.page.goto(`${BASE}/#/`);
  await ada.page.click("[data-testid=rename-mesh]");
  await ada.page.fill("dialog input[name=name]", "Platform Crew");
  await ada.page.click("dialog button[value=ok]");
  await ada.page.waitForSelector("[data-testid=mesh-card] >> text=Platform Crew");

  step("ada signs out and back in");
  await ada.page.click("text=Sign out");
  await ada.page.waitForSelector("form.auth");
  await ada.page.fill("input[name=email]", "ada@example.com");
  await ada.page.fill("input[name=password]", "correct horse battery staple");
  await ada.page.click("form.auth button[type=submit]");
  await ada.page.waitForSelector("[data-testid=mesh-card] >> text=Platform Crew");

  if (await ada.page.locator("[data-testid=leave-mesh]").count()) throw new Error("the mesh owner is offered Leave");

  step("grace joins a second mesh and leaves it");
  await ada.page.fill("input[name=name]", "Side Project");
  await ada.page.click("text=Create mesh");
  await ada.page.waitForSelector(".topic[aria-current=page] >> text=general");
  await ada.page.click("a.tab >> text=Invites");
  await ada.page.click("[data-testid=mint-invite]");
  const sideLink = await ada.page.textContent("[data-testid=invite-link]");
  await grace.page.goto(sideLink);
  await grace.page.waitForSelector("h1 >> text=Join Side Project");
  await grace.page.click("[data-testid=join-submit]");
  await grace.page.waitForSelector(".topic[aria-current=page] >> text=general");
  await grace.page.goto(`${BASE}/#/`);
  await grace.page.locator("[data-testid=mesh-card]", { hasText: "Side Project" }).locator("[data-testid=leave-mesh]").click();
  await grace.page.click("[data-testid=confirm]");
  await grace.page.waitForSelector("text=You left Side Project");
  await grace.page.waitForSelector("[data-testid=mesh-card] >> text=Side Project", { state: "detached" });
  await grace.page.waitForSelector("[data-testid=mesh-card] >> text=Platform Crew");

  // ---- archiving ends grace's stream, with the reason in words ----
  step("ada archives the mesh; grace's page says it was archived");
  await grace.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await waitBody(grace.page, "Canary is green");
  await grace.page.waitForSelector(".live-dot[data-state=live]");
  await ada.page.goto(`${BASE}/#/`);
  phase = "archived";
  await ada.page.locator("[data-testid=mesh-card]", { hasText: "Platform Crew" }).locator("[data-testid=archive-mesh]").click();
  await ada.page.click("[data-testid=confirm]");
  await ada.page.waitForSelector("[data-testid=mesh-card] >> text=Platform Crew", { state: "detached" });
  await ada.page.waitForSelector("[data-testid=mesh-card] >> text=Side Project");
  await grace.page.waitForSelector("[data-testid=stream-ended][data-reason=mesh_archived] >> text=This mesh was archived", { timeout: 20000 });
  if (!(await grace.page.locator("[data-testid=composer]").isDisabled())) throw new Error("composer still enabled after archiving");

  say({ done: true, ok: true, sealMs, plaintexts: [first, second, "Thanks @ada, watching the dashboards", mention, ...Array.from({ length: 55 }, (_, i) => `build ${i + 1} passed`), rotated, reply, epoch3], consoleErrors, requests });
} catch (e) {
  // What each page showed when the run failed, for whoever reads the log.
  const dir = mkdtempSync(join(tmpdir(), "claudemesh-browser-"));
  for (const [who, page] of users) await page.screenshot({ path: join(dir, `${who}.png`) }).catch(() => {});
  say({ done: true, ok: false, error: `${e?.stack || e}\n(screenshots of the pages: ${dir})`, consoleErrors, requests });
} finally {
  await b.close().catch(() => {});
  process.exit(0); // stdin (the Go test's answers) would keep node alive
}
