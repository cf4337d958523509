// ui.js — a tiny DOM helper and the shared widgets (toasts, confirm dialog,
// empty/loading/error states). No framework; text goes in as text nodes.
export function h(tag, attrs = {}, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className += (el.className ? " " : "") + v;
    else if (k === "text") el.textContent = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// BIDI_CONTROLS are the explicit embeddings, overrides and isolates and
// their terminators (U+202A–U+202E, U+2066–U+2069). Text from other people
// may carry them (bodies keep them: they are the sender's bytes), but they
// must not reorder what the page shows around them: a right-to-left
// override turns "x\u202Egnp.exe" into "xexe.png".
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069]/g;

// ut renders user-supplied text (a name, summary, description, body): the
// whole in an isolate (<bdi>: its own direction, nothing leaks in or out),
// and each bidi control in an isolate of its own, shown as a small U+ mark,
// so it reorders nothing; the character stays in the DOM, so copying the
// text copies it. tag may be "bdi.class" or another element (with a class,
// e.g. "span.name"); it gets dir=auto and unicode-bidi: isolate (app.css).
export function ut(text, tag = "bdi", attrs = {}) {
  const s = String(text ?? "");
  const out = [];
  let last = 0;
  for (const m of s.matchAll(BIDI_CONTROLS)) {
    out.push(s.slice(last, m.index));
    const cp = `U+${m[0].codePointAt(0).toString(16).toUpperCase()}`;
    out.push(h("bdi.bidi-ctl", { "data-cp": cp, title: `hidden text-direction character ${cp}` }, m[0]));
    last = m.index + m[0].length;
  }
  out.push(s.slice(last));
  return h(tag, { dir: "auto", ...attrs, class: "ut" }, out);
}

// plain is user text where no element can be (an <option>, a title
// attribute): the bidi controls are dropped.
export const plain = (text) => String(text ?? "").replace(BIDI_CONTROLS, "");

export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const loading = (what = "Loading") => h("div.state.loading", { role: "status" }, h("span.spinner"), `${what}…`);
// title and hint may be strings or nodes (e.g. ut(…) around a user's text).
export const empty = (title, hint, ...actions) => h("div.state.empty", {}, h("strong", {}, title), hint && h("p", {}, hint), ...actions);
export const errorBox = (err, retry) =>
  h("div.state.error", { role: "alert" }, h("strong", { text: "Something went wrong" }), h("p", {}, ut(err?.message || String(err), "span")),
    retry && h("button.btn", { onclick: retry, type: "button" }, "Try again"));

let toastHost;
export function toast(msg, kind = "info") {
  toastHost ??= document.body.appendChild(h("div.toasts", { "aria-live": "polite" }));
  // A message may quote what someone typed (a server's detail, a name).
  const t = toastHost.appendChild(h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" }, typeof msg === "string" ? ut(msg, "span") : msg));
  setTimeout(() => t.remove(), 4000);
}

// confirmDialog resolves true when the user confirms. title and body may
// be strings or nodes (the dialogs below take ut(…) for users' text).
export function confirmDialog(title, body, action = "Confirm") {
  return new Promise((resolve) => {
    const d = h("dialog.dialog", { "aria-labelledby": "dlg-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dlg-title" }, title),
        h("p", {}, body),
        h("div.row.end", {},
          h("button.btn", { value: "cancel", type: "submit" }, "Cancel"),
          h("button.btn.danger", { value: "ok", type: "submit", "data-testid": "confirm" }, action))));
    d.addEventListener("close", () => {
      resolve(d.returnValue === "ok");
      d.remove();
    });
    document.body.append(d);
    d.showModal();
  });
}

export function formDialog(title, fields, action) {
  return new Promise((resolve) => {
    const form = h("form", { method: "dialog" }, h("h2", {}, title), ...fields,
      h("div.row.end", {}, h("button.btn", { value: "cancel", type: "submit", formnovalidate: true }, "Cancel"),
        h("button.btn.primary", { value: "ok", type: "submit" }, action)));
    const d = h("dialog.dialog", {}, form);
    d.addEventListener("close", () => {
      resolve(d.returnValue === "ok" ? new FormData(form) : null);
      d.remove();
    });
    document.body.append(d);
    d.showModal();
  });
}

export function field(label, input, hint) {
  return h("label.field", {}, h("span", { text: label }), input, hint && h("small", {}, hint));
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
export function ago(iso) {
  const s = (new Date(iso).getTime() - Date.now()) / 1000;
  const a = Math.abs(s);
  if (a < 45) return "just now";
  if (a < 3600) return rtf.format(Math.round(s / 60), "minute");
  if (a < 86400) return rtf.format(Math.round(s / 3600), "hour");
  return rtf.format(Math.round(s / 86400), "day");
}

export function clock(iso) {
  const d = new Date(iso);
  const time = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString([], { month: "short", day: "numeric" })} ${time}`;
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied to clipboard");
  } catch {
    toast("Copy failed: select the text and copy it by hand", "error");
  }
}
