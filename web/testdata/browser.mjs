// browser.mjs — the dashboard's acceptance run in real Chromium, driven by
// web/browser_test.go (which starts the broker and checks the database).
// Env: BASE (broker URL), PW_DIR (where playwright-core is installed),
// CHROMIUM, SHOTS_DIR (optional: write the README screenshots there).
// Protocol with the Go test: JSON lines on stdout; a line with "need" waits
// for one line on stdin. The last line is {"done": true, …}.
import { createRequire } from "node:module";
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

async function newUser(name, width = 1280) {
  const ctx = await b.newContext({ viewport: { width, height: 800 }, colorScheme: "light" });
  // The test shortens the re-seal cycle the documented way; the topic
  // header shows the override.
  await ctx.addInitScript(() => localStorage.setItem("claudemesh.resealSeconds", "2"));
  ctx.on("request", (r) => requests.push({ who: name, method: r.method(), url: r.url() }));
  const page = await ctx.newPage();
  page.on("console", (m) => m.type() === "error" && consoleErrors.push({ who: name, phase, text: m.text(), url: m.location()?.url || "" }));
  page.on("pageerror", (e) => consoleErrors.push({ who: name, phase, text: `pageerror: ${e.message}` }));
  page.setDefaultTimeout(30000);
  return { ctx, page };
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
  await grace.page.waitForSelector("text=Join a mesh");
  if (grace.page.url().includes(token)) throw new Error("the invite token stayed in the address bar");
  await grace.page.click("[data-testid=join-submit]");
  await grace.page.waitForSelector(".topic[aria-current=page] >> text=general");
  await grace.page.waitForSelector("[data-testid=key-state] >> text=not keyed yet");

  // ---- context 1 posts: the first post keys #general ----
  step("ada posts the first encrypted message");
  await ada.page.evaluate(() => localStorage.setItem("claudemesh.resealSeconds", "300")); // hold the seal back for a moment
  await ada.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await ada.page.waitForSelector("[data-testid=key-state] >> text=not keyed yet");
  const first = "Deploy window opens at 14:00, @grace please watch the canary";
  await ada.page.fill("[data-testid=composer]", first);
  await ada.page.keyboard.press("Enter");
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
  await ada.page.fill("[data-testid=composer]", second);
  await ada.page.keyboard.press("Enter");
  await waitBody(grace.page, "Canary is green", 15000);
  await grace.page.fill("[data-testid=composer]", "Thanks @ada, watching the dashboards");
  await grace.page.keyboard.press("Enter");
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

  step("peers: a status change arrives live");
  await ada.page.click("a.tab >> text=Peers");
  await ada.page.waitForSelector("[data-testid=peers] >> text=running the test suite");
  await need("peer-status", {});
  await ada.page.waitForSelector("[data-testid=peers] >> text=waiting for review");

  step("topics: create a public topic; history pages back by cursor");
  await ada.page.click("a.tab >> text=Topics");
  await ada.page.click("[data-testid=new-topic]");
  await ada.page.fill("dialog input[name=name]", "deploys");
  await ada.page.fill("dialog input[name=description]", "Deploy announcements");
  await ada.page.click("dialog button[value=ok]");
  await ada.page.waitForSelector(".topic[aria-current=page] >> text=deploys");
  for (let i = 1; i <= 55; i++) {
    await ada.page.fill("[data-testid=composer]", `build ${i} passed`);
    await ada.page.keyboard.press("Enter");
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
  }

  // ---- revoking grace ends her live stream in her page ----
  step("ada revokes grace; grace's page shows the stream ended");
  await grace.page.goto(`${BASE}/#/m/${meshId}/t/general`);
  await grace.page.waitForSelector("[data-testid=messages] >> text=Canary is green");
  await ada.page.goto(`${BASE}/#/m/${meshId}/members`);
  phase = "revoked";
  await ada.page.click("[data-testid=revoke-grace]");
  await ada.page.click("[data-testid=confirm]");
  await ada.page.waitForSelector("text=Revoked @grace");
  await grace.page.waitForSelector("[data-testid=stream-ended]", { timeout: 20000 });
  if (!(await grace.page.locator("[data-testid=composer]").isDisabled())) throw new Error("composer still enabled after revocation");

  step("ada signs out and back in");
  await ada.page.click("text=Sign out");
  await ada.page.waitForSelector("form.auth");
  await ada.page.fill("input[name=email]", "ada@example.com");
  await ada.page.fill("input[name=password]", "correct horse battery staple");
  await ada.page.click("form.auth button[type=submit]");
  await ada.page.waitForSelector("[data-testid=mesh-card] >> text=Platform Team");

  say({ done: true, ok: true, sealMs, plaintexts: [first, second, "Thanks @ada, watching the dashboards", ...Array.from({ length: 55 }, (_, i) => `build ${i + 1} passed`)], consoleErrors, requests });
} catch (e) {
  say({ done: true, ok: false, error: String(e?.stack || e), consoleErrors, requests });
} finally {
  await b.close().catch(() => {});
  process.exit(0); // stdin (the Go test's answers) would keep node alive
}
