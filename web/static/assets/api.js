// api.js — every request the dashboard makes goes through here. The user's
// access token lives in memory only; the rotating refresh token is kept in
// localStorage so a reload stays signed in, and it is rotated under a Web
// Lock so two tabs never present the same (spent) token, which the broker
// would treat as theft and answer by revoking the whole family.
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem?.code || "";
    this.problem = problem || {};
  }
}

const RT = "claudemesh.refreshToken";

export const auth = { user: null, access: null, exp: 0, timer: 0, onSignedOut: () => {} };

// db reports whether the broker's database is answering. While a request
// is refused with 503 database_unavailable the page shows a calm "retrying"
// state (app.js) instead of an error, and retries after Retry-After.
export const db = { down: false, onChange: () => {} };
function setDbDown(v) {
  if (db.down === v) return;
  db.down = v;
  db.onChange(v);
}
const DB_RETRY_FOR_MS = 120000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function request(method, path, { token, body } = {}) {
  const started = Date.now();
  for (;;) {
    try {
      const data = await requestOnce(method, path, token, body);
      setDbDown(false);
      return data;
    } catch (e) {
      // The broker answers 503 database_unavailable only when it did not
      // store anything; posts carry a clientMessageId, so a retry never
      // doubles a message.
      if (e.status !== 503 || e.code !== "database_unavailable" || Date.now() - started > DB_RETRY_FOR_MS) throw e;
      setDbDown(true);
      await sleep(Math.min(30, Math.max(1, e.retryAfter || 2)) * 1000);
    }
  }
}

async function requestOnce(method, path, token, body) {
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  } catch {
    throw new ApiError(0, { code: "network", detail: "The broker did not answer. Check your connection and try again." });
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new ApiError(res.status, data || { detail: text });
    err.retryAfter = Number(res.headers.get("retry-after")) || 0;
    throw err;
  }
  return data;
}

function startSession(s) {
  auth.user = s.user;
  auth.access = s.accessToken;
  auth.exp = Date.now() + s.expiresIn * 1000;
  localStorage.setItem(RT, s.refreshToken);
  clearTimeout(auth.timer);
  // Silent refresh a minute before the access token expires.
  auth.timer = setTimeout(() => refresh().catch(() => signedOut()), Math.max(5000, s.expiresIn * 1000 - 60000));
}

function signedOut() {
  clearTimeout(auth.timer);
  auth.user = auth.access = null;
  localStorage.removeItem(RT);
  auth.onSignedOut();
}

export const hasStoredSession = () => !!localStorage.getItem(RT);

export async function signup(email, password, name) {
  startSession(await request("POST", "/v1/auth/signup", { body: { email, password, name } }));
}

export async function login(email, password) {
  startSession(await request("POST", "/v1/auth/login", { body: { email, password } }));
}

let refreshing = null;
export function refresh() {
  refreshing ??= (async () => {
    const run = async () => {
      const rt = localStorage.getItem(RT); // the newest, whichever tab rotated it
      if (!rt) throw new ApiError(401, { code: "signed_out", detail: "signed out" });
      try {
        startSession(await request("POST", "/v1/auth/refresh", { body: { refreshToken: rt } }));
      } catch (e) {
        if (e.status === 401) localStorage.removeItem(RT); // spent, expired or revoked: sign in again
        throw e;
      }
    };
    try {
      if (navigator.locks) await navigator.locks.request("claudemesh-refresh", run);
      else await run();
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

export async function logout() {
  const rt = localStorage.getItem(RT);
  if (rt) await request("POST", "/v1/auth/logout", { body: { refreshToken: rt } }).catch(() => {});
  signedOut();
}

// userCall calls a user route, refreshing the access token when it is about
// to expire or was refused.
export async function userCall(method, path, body) {
  if (!auth.access || Date.now() > auth.exp - 30000) await refresh();
  try {
    return await request(method, path, { token: auth.access, body });
  } catch (e) {
    if (e.status !== 401) throw e;
    await refresh().catch((err) => {
      signedOut();
      throw err;
    });
    return request(method, path, { token: auth.access, body });
  }
}

// loadContract reads the operations the broker serves from its own
// /openapi.yaml, so optional views switch on when their routes exist
// (instead of probing routes and showing errors). Keys: "GET /v1/meshes/{}".
export async function loadContract() {
  try {
    const res = await fetch("/openapi.yaml", { cache: "no-store" });
    return parseContract(await res.text());
  } catch {
    return parseContract(""); // no optional features
  }
}

// parseContract lists the operations of an openapi.yaml (paths at two
// spaces, methods at four, as ours is written) and derives the switches.
export function parseContract(text) {
  const ops = new Set();
  let path = null;
  for (const line of text.split("\n")) {
    let m = /^ {2}(\/\S*):\s*$/.exec(line);
    if (m) {
      path = m[1].replace(/\{[^}]+\}/g, "{}");
      continue;
    }
    if (/^\S/.test(line)) path = null;
    m = /^ {4}(get|post|put|patch|delete):\s*$/.exec(line);
    if (path && m) ops.add(`${m[1].toUpperCase()} ${path}`);
  }
  return {
    ops,
    inviteList: ops.has("GET /v1/meshes/{}/invites"),
    inviteRevoke: ops.has("DELETE /v1/meshes/{}/invites/{}"),
    rename: ops.has("PATCH /v1/meshes/{}"),
    leave: ops.has("POST /v1/meshes/{}/leave"),
    archive: ops.has("POST /v1/meshes/{}/archive"),
    inbox: ops.has("GET /v1/me/notifications") && ops.has("POST /v1/me/notifications/read"),
    myTopics: ops.has("GET /v1/me/topics") && ops.has("PATCH /v1/me/topics/{}/read"),
    rotateKey: ops.has("POST /v1/topics/{}/rotate-key"),
  };
}
