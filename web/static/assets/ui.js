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

export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export const loading = (what = "Loading") => h("div.state.loading", { role: "status" }, h("span.spinner"), `${what}…`);
export const empty = (title, hint, ...actions) => h("div.state.empty", {}, h("strong", { text: title }), hint && h("p", { text: hint }), ...actions);
export const errorBox = (err, retry) =>
  h("div.state.error", { role: "alert" }, h("strong", { text: "Something went wrong" }), h("p", { text: err?.message || String(err) }),
    retry && h("button.btn", { onclick: retry, type: "button" }, "Try again"));

let toastHost;
export function toast(msg, kind = "info") {
  toastHost ??= document.body.appendChild(h("div.toasts", { "aria-live": "polite" }));
  const t = toastHost.appendChild(h(`div.toast.${kind}`, { role: kind === "error" ? "alert" : "status" }, msg));
  setTimeout(() => t.remove(), 4000);
}

// confirmDialog resolves true when the user confirms.
export function confirmDialog(title, body, action = "Confirm") {
  return new Promise((resolve) => {
    const d = h("dialog.dialog", { "aria-labelledby": "dlg-title" },
      h("form", { method: "dialog" },
        h("h2", { id: "dlg-title", text: title }),
        h("p", { text: body }),
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
    const form = h("form", { method: "dialog" }, h("h2", { text: title }), ...fields,
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
  return h("label.field", {}, h("span", { text: label }), input, hint && h("small", { text: hint }));
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
