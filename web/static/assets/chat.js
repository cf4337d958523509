// chat.js — one topic's end-to-end encrypted chat: history paged back by
// seq, live messages, each opened with the key of its epoch, the composer,
// read marks, and the re-seal duty while the topic is open.
import { resealMs, resealOverridden } from "./mesh.js";
import { h, mount, toast, confirmDialog, clock, ut } from "./ui.js";

const enc = encodeURIComponent;

export function chatView(ctx, pane, topic, { S }) {
  const list = h("ol.messages", { "aria-live": "polite", "data-testid": "messages" });
  const scroller = h("div.scroller", {}, h("div.sentinel"), list);
  const status = h("div.keystate", { "data-testid": "key-state" });
  const input = h("textarea.composer-input", { rows: 1, placeholder: `Message #${topic.name}`, "aria-label": `Message #${topic.name}`, "data-testid": "composer" });
  const send = h("button.btn.primary", { type: "submit" }, "Send");
  const form = h("form.composer", {}, input, send);
  const joinBtn = h("button.btn.primary", { type: "button", hidden: topic.joined, onclick: joinTopic }, `Join #${topic.name}`);
  // A mesh admin or the topic's lead may start a new key epoch by hand
  // (POST …/rotate-key), e.g. after a device was lost.
  const rotateBtn = S.features.rotateKey ? h("button.btn.ghost.small", { type: "button", hidden: true, onclick: rotateKey, "data-testid": "rotate-key" }, "New key") : null;
  mount(pane,
    h("div.chat-head", {},
      h("a.btn.ghost.small.mobile-only", { href: `#/m/${ctx.id}/t` }, "← Topics"),
      h("div", {}, h("h2", { text: `#${topic.name}` }), topic.description ? ut(topic.description, "small.muted.topic-desc") : null),
      h("div.spacer"), status, rotateBtn),
    scroller, joinBtn, form);
  const msgs = new Map(); // seq → message
  // state: what keyState says about the topic's current key epoch; older
  // epochs' keys are opened as their messages show up (ctx.loadEpochs).
  let state = null, oldest = null, hasMore = false, loadingOlder = false, markTimer = 0, cycleTimer = 0, disposed = false;

  const mentionRe = /(^|[^A-Za-z0-9_-])(@[A-Za-z0-9][A-Za-z0-9_-]{0,63})/g;
  // renderBody: the text between mentions goes through ut (an isolate, and
  // each bidi control in one of its own), so a control reorders nothing:
  // not the rest of the body, not a mention, not what follows the body.
  const renderBody = (text) => {
    const out = [];
    let last = 0;
    for (const m of text.matchAll(mentionRe)) {
      const at = m.index + m[1].length;
      out.push(ut(text.slice(last, at)));
      const me = m[2].slice(1).toLowerCase() === ctx.m.displayName;
      out.push(h(me ? "mark.mention.me" : "mark.mention", { text: m[2] }));
      last = at + m[2].length;
    }
    out.push(ut(text.slice(last)));
    return out;
  };
  // Decrypt each message once per set of keys held, not on every repaint.
  const plain = new Map();
  let plainVersion = -1;
  const decrypt = (m) => {
    if (plainVersion !== ctx.keyVersion) {
      plain.clear();
      plainVersion = ctx.keyVersion;
    }
    if (!plain.has(m.seq)) plain.set(m.seq, ctx.decrypt(m));
    return plain.get(m.seq);
  };
  const row = (m) => {
    const d = decrypt(m);
    const mine = m.senderMemberId === ctx.m.memberId;
    return h("li.msg", { "data-seq": m.seq, "data-epoch": m.keyEpoch, class: mine ? "mine" : "" },
      h("div.avatar", { "aria-hidden": "true", text: m.senderDisplayName.slice(0, 1).toUpperCase() }),
      h("div.msg-main", {},
        h("div.meta", {}, h("strong", { text: m.senderDisplayName }), h("time", { datetime: m.createdAt, title: m.createdAt, text: clock(m.createdAt) }),
          d.plain ? h("span.tag.warn", { title: "sent before this topic was keyed; not end-to-end encrypted", text: "unencrypted" }) : null),
        d.locked ? h("p.body.locked", {}, h("i.icon-lock", { "aria-hidden": "true" }),
          d.never ? "Encrypted with an earlier key of this topic that was never shared with you" : "Encrypted — waiting for a member to share the key")
          : d.broken ? h("p.body.locked", { text: "This message could not be decrypted." })
            : h("p.body", { "data-testid": "message-body", dir: "auto" }, renderBody(d.text))));
  };
  const paint = () => {
    const atBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 40;
    const seqs = [...msgs.keys()].sort((a, b) => a - b);
    mount(list, seqs.map((s) => row(msgs.get(s))));
    if (!seqs.length) list.append(h("li.state.empty", {}, h("strong", { text: "No messages yet" }), h("p", { text: topic.keyed ? "Say hello — it is end-to-end encrypted." : "Your first message keys this topic: from then on it is end-to-end encrypted." })));
    if (atBottom) scroller.scrollTop = scroller.scrollHeight;
  };
  const paintStatus = () => {
    const waiting = state === "waiting";
    if (state === "ready") mount(status, h("span.tag.ok", { text: "end-to-end encrypted" }));
    else if (waiting) mount(status, h("span.tag.warn", { "data-testid": "waiting-key", text: "waiting for a member to share the key" }));
    else if (state === "unkeyed") mount(status, h("span.tag", { text: "not keyed yet" }));
    else if (state === "unclaimed") mount(status, h("span.tag", { "data-testid": "new-epoch", title: `key epoch ${topic.keyEpoch}`, text: "new key: your next message sets it" }));
    else if (state === "not-member") mount(status, h("span.tag", { text: "join to read" }));
    else status.replaceChildren();
    if (resealOverridden()) status.append(h("span.tag", { title: "localStorage claudemesh.resealSeconds", text: `re-seal every ${resealMs() / 1000}s (dev setting)` }));
    const can = topic.joined && !waiting && state !== "not-member" && !ctx.ended && topic.role !== "observer";
    input.disabled = send.disabled = !can;
    input.placeholder = waiting ? "Waiting for a member to share the key…" : !topic.joined ? "Join this topic to post" : `Message #${topic.name}`;
    joinBtn.hidden = topic.joined;
    if (rotateBtn) rotateBtn.hidden = !(state === "ready" && (ctx.isAdmin || topic.role === "lead") && !ctx.ended);
  };
  // openKeys brings the keys for what is on screen: the current epoch's
  // (or why not) and those of older epochs that messages were written with.
  const openKeys = async () => {
    const before = [state, ctx.keyVersion];
    state = await ctx.keyState(topic);
    const epochs = new Set([...msgs.values()].filter((m) => m.bodyVersion === 2).map((m) => m.keyEpoch));
    await ctx.loadEpochs(topic, epochs);
    if (before[0] !== state) paintStatus();
    if (before[1] !== ctx.keyVersion) paint();
  };
  const loadOlder = async () => {
    if (loadingOlder || (!hasMore && oldest !== null)) return;
    loadingOlder = true;
    const prevH = scroller.scrollHeight;
    try {
      const q = oldest ? `?limit=50&before=${oldest}` : "?limit=50";
      const page = await ctx.call("GET", `/v1/topics/${enc(topic.name)}/messages${q}`);
      for (const m of page.items) msgs.set(m.seq, m);
      hasMore = page.hasMore;
      if (page.items.length) oldest = Math.min(...page.items.map((m) => m.seq));
      const first = oldest === null || !page.items.length;
      paint();
      if (!first) scroller.scrollTop += scroller.scrollHeight - prevH;
      await openKeys();
    } catch (e) {
      toast(e.message, "error");
    } finally {
      loadingOlder = false;
    }
  };
  // Read marks are sent 800 ms after the last change, and at once when the
  // view closes with one still due (leaving a topic right after reading it
  // must not leave it unread).
  let markDue = false;
  const sendMark = async () => {
    clearTimeout(markTimer);
    markDue = false;
    const top = Math.max(0, ...msgs.keys());
    if (!topic.joined || top <= (topic.lastReadSeq || 0) || ctx.ended) return;
    try {
      topic.lastReadSeq = (await ctx.call("PATCH", `/v1/topics/${enc(topic.name)}/read`, { seq: top })).lastReadSeq;
    } catch {
      /* a read mark is best effort */
    }
  };
  const markRead = () => {
    if (document.hidden) return;
    clearTimeout(markTimer);
    markDue = true;
    markTimer = setTimeout(sendMark, 800);
  };
  // The re-seal cycle: re-read the topic's key epoch (a rotation starts a
  // new one), then seal its key for pending members while we hold it, or
  // check whether someone has sealed it for us.
  const cycle = async () => {
    if (disposed || ctx.ended) return;
    try {
      if (topic.keyed && topic.joined) await ctx.refreshTopic(topic);
      await openKeys();
      if (state === "ready") {
        const n = await ctx.reseal(topic);
        if (n) toast(`Shared the #${topic.name} key with ${n} member${n > 1 ? "s" : ""}`);
      }
    } catch {
      /* retried next cycle */
    }
    status.dataset.cycles = String(Number(status.dataset.cycles || 0) + 1); // for tests: the duty has run
    if (!disposed) cycleTimer = setTimeout(cycle, resealMs());
  };
  async function rotateKey() {
    if (!(await confirmDialog(`New key for #${topic.name}?`, "Messages from now on use a fresh key, which the next message sets and key holders share with the topic's members. Older messages keep opening with their own key.", "Start a new key"))) return;
    try {
      // Only the key fields: the broker's answer does not carry the
      // caller's topic membership (joined/role read false/null).
      const t = await ctx.call("POST", `/v1/topics/${enc(topic.name)}/rotate-key`);
      Object.assign(topic, { keyed: t.keyed, keyEpoch: t.keyEpoch, keyPubkey: t.keyPubkey });
      await openKeys();
      paintStatus();
    } catch (e) {
      toast(e.message, "error");
    }
  }
  async function joinTopic() {
    try {
      Object.assign(topic, await ctx.call("POST", `/v1/topics/${enc(topic.name)}/join`));
      await openKeys();
      paintStatus();
    } catch (e) {
      toast(e.message, "error");
    }
  }
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || send.disabled) return;
    send.disabled = true;
    // Clear at once: the message may come back over the stream before the
    // post answers, and whatever is typed meanwhile must not be wiped.
    input.value = "";
    input.style.height = "";
    try {
      const m = await ctx.post(topic, text);
      state = "ready";
      msgs.set(m.seq, m);
      paintStatus();
      paint();
      scroller.scrollTop = scroller.scrollHeight;
      markRead();
    } catch (ex) {
      if (!input.value) input.value = text; // not sent: give it back
      toast(ex.message, "error");
    } finally {
      paintStatus();
      input.focus();
    }
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", () => {
    input.style.height = "";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  });
  const io = new IntersectionObserver((es) => es.some((x) => x.isIntersecting) && hasMore && loadOlder(), { root: scroller });
  S.cleanup.push(
    ctx.on("message", async (m) => {
      if (m.topic !== topic.name) return;
      msgs.set(m.seq, m);
      paint();
      markRead();
      // A message of an epoch newer than we know: the topic was keyed or
      // its key rotated and claimed; catch up before the next cycle.
      if (m.bodyVersion === 2 && m.keyEpoch > (topic.keyEpoch || 0)) {
        try {
          await ctx.refreshTopic(topic);
          await openKeys();
        } catch {
          /* the re-seal cycle tries again */
        }
      }
    }),
    ctx.on("live", () => paintStatus()),
    () => {
      disposed = true;
      io.disconnect();
      clearTimeout(cycleTimer);
      if (markDue) sendMark();
    });
  (async () => {
    try {
      state = await ctx.keyState(topic);
    } catch (e) {
      state = null;
      toast(e.message, "error");
    }
    paintStatus();
    await loadOlder();
    scroller.scrollTop = scroller.scrollHeight;
    io.observe(scroller.querySelector(".sentinel"));
    markRead();
    cycle();
    if (!input.disabled) input.focus();
  })();
}
