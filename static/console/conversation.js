/* The open conversation: its history (newest page first, older pages on scrolling up),
 * live messages and private notes in one time-ordered log, typing, and reading.
 * Outgoing bubbles name their author (the message's `sender`); notes have their own look
 * and are never mixed up with what the client sees. */
import { api } from "./api.js";
import { config, emit, listen, on, state } from "./core.js";
import { $, clear, el, formatTime, safeUrl, ts } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { currentChanged, markedRead, readingNow, senderLabel, STATUS_LABEL, unreadOf, upsertDesk } from "./inbox.js";
import { clientName, userName } from "./people.js";
import { send } from "./realtime.js";

const conv = {
  items: new Map(), // key ("m:" / "n:" + uuid) -> message or note of the open help desk
  nodes: new Map(), // key -> <li>
  historyNext: null,
  historyLoading: false,
  token: 0,
};

const MSG_STATUS = {
  sending: t("Sending…"),
  sent: t("Sent"),
  delivered: t("Delivered"),
  read: t("Read"),
  failed: t("Failed"),
};

function itemOrder(a, b) {
  const ta = ts(a.created_at);
  const tb = ts(b.created_at);
  if (ta !== tb) return ta - tb;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}

function authorOf(msg) {
  if (msg.type === "sent") return senderLabel(msg);
  const desk = state.desks.get(msg.help_desk);
  return clientName(desk && desk.client);
}

function retryButton(msg) {
  return el("button", {
    type: "button",
    className: "retry",
    text: t("Retry"),
    "aria-label": t("Retry sending this message"),
    onclick: (event) => retryMessage(msg.uuid, event.currentTarget),
  });
}

function renderMessage(msg) {
  const outgoing = msg.type === "sent";
  // Who wrote it, for screen readers, read before the text (an aria-label on the <li>
  // would replace the message itself in its accessible name); the visible name below
  // is hidden from them so it is not read twice.
  const children = [el("span", { className: "visually-hidden msg-author", text: authorOf(msg) + ": " })];
  if (outgoing) children.push(el("p", { className: "msg-by", "aria-hidden": "true", text: authorOf(msg) }));
  if (msg.message) children.push(el("p", { className: "msg-text", text: msg.message }));
  const href = safeUrl(msg.file);
  if (href) {
    // The URL is the download view (it names the message, not the file): show the
    // uploaded name; older events carried the name in the URL.
    let name = msg.file_name || href.split("/").pop() || "file";
    if (!msg.file_name) {
      try {
        name = decodeURIComponent(name);
      } catch (e) {
        /* not percent-encoded after all: show it as is */
      }
    }
    children.push(el("p", { className: "msg-file" }, [t("Attachment:") + " ", el("a", { href, target: "_blank", rel: "noopener", text: name })]));
  }
  const meta = [el("time", { datetime: msg.created_at, text: formatTime(msg.created_at) })];
  if (outgoing) {
    meta.push(el("span", { className: "msg-status", dataset: { status: msg.status }, text: MSG_STATUS[msg.status] || msg.status }));
    if (msg.status === "failed") meta.push(retryButton(msg));
  }
  children.push(el("p", { className: "msg-meta" }, meta));
  return el("li", { className: "msg " + (outgoing ? "msg-out" : "msg-in"), dataset: { uuid: msg.uuid, status: msg.status } }, children);
}

function renderNote(note) {
  const author = userName(note.author) || t("Agent");
  return el("li", { className: "msg note", dataset: { uuid: note.uuid, kind: "note" } }, [
    el("span", { className: "visually-hidden msg-author", text: fmt(t("Private note by %(name)s"), { name: author }) + ": " }),
    el("p", { className: "msg-by", "aria-hidden": "true", text: fmt(t("Note · %(name)s · only agents see this"), { name: author }) }),
    el("p", { className: "msg-text", text: note.text }),
    el("p", { className: "msg-meta" }, [el("time", { datetime: note.created_at, text: formatTime(note.created_at) })]),
  ]);
}

// A status change patches the shown item in place: replacing the <li> would make the
// live log (aria-relevant="additions") read the whole message again.
function patchMessage(node, msg, known) {
  if (known.message !== msg.message || known.file !== msg.file || known.type !== msg.type) return false;
  node.dataset.status = msg.status;
  const status = node.querySelector(".msg-status");
  if (status) {
    status.dataset.status = msg.status;
    status.textContent = MSG_STATUS[msg.status] || msg.status;
  }
  const author = authorOf(msg);
  node.querySelector(".msg-author").textContent = author + ": ";
  const by = node.querySelector(".msg-by");
  if (by) by.textContent = author;
  const retry = node.querySelector(".retry");
  if (msg.status === "failed" && !retry && status) {
    status.parentNode.appendChild(retryButton(msg));
  } else if (msg.status !== "failed" && retry) {
    const hadFocus = retry === document.activeElement;
    retry.remove();
    if (hadFocus) $("reply-text").focus();
  }
  return true;
}

function insertNode(key, item, node, options) {
  const list = $("message-list");
  if (!conv.historyNext && !conv.historyLoading) $("history-status").textContent = t("Beginning of the conversation.");
  const box = $("history");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  // Insert in time order; live items usually go last, older pages first.
  let after = null;
  for (let child = list.lastElementChild; child; child = child.previousElementSibling) {
    const other = conv.items.get(child.dataset.key);
    if (other && itemOrder(other, item) <= 0) {
      after = child;
      break;
    }
  }
  node.dataset.key = key;
  list.insertBefore(node, after ? after.nextSibling : list.firstChild);
  if (!options.fromHistory && (atBottom || options.own)) box.scrollTop = box.scrollHeight;
}

export function upsertMessage(msg, options) {
  if (!msg || msg.help_desk !== state.openDesk) return;
  options = options || {};
  const key = "m:" + msg.uuid;
  const known = conv.items.get(key);
  // A history page or an API answer computed before a live update must not roll the
  // status back (e.g. the send answer `sending` arriving after the event `sent`).
  if (known && options.rest && ts(known.updated_at) > ts(msg.updated_at)) return;
  conv.items.set(key, msg);
  const old = conv.nodes.get(key);
  if (old && known && patchMessage(old, msg, known)) return;
  const node = renderMessage(msg);
  conv.nodes.set(key, node);
  if (old) {
    const hadFocus = old.contains(document.activeElement);
    node.dataset.key = key;
    $("message-list").replaceChild(node, old);
    if (hadFocus) (node.querySelector("button") || $("reply-text")).focus();
    return;
  }
  insertNode(key, msg, node, options);
}

export function upsertNote(note, options) {
  if (!note || note.help_desk !== state.openDesk) return;
  const key = "n:" + note.uuid;
  if (conv.items.has(key)) return; // notes do not change
  conv.items.set(key, note);
  const node = renderNote(note);
  conv.nodes.set(key, node);
  insertNode(key, note, node, options || {});
}

export function renameOwn(msg) {
  const node = conv.nodes.get("m:" + msg.uuid);
  const known = conv.items.get("m:" + msg.uuid);
  if (node && known) patchMessage(node, known, known);
}

on("new_message", (msg) => {
  upsertMessage(msg);
  if (msg && msg.type === "received" && msg.help_desk === state.openDesk) maybeMarkRead(true);
});
on("update_message", (msg) => {
  upsertMessage(msg);
  const desk = state.desks.get(msg.help_desk);
  if (desk && desk.last_message && desk.last_message.uuid === msg.uuid) desk.last_message = msg;
});
on("new_note", (note) => upsertNote(note));

function retryMessage(uuid, button) {
  button.disabled = true;
  api("POST", "/api/messages/" + uuid + "/retry/")
    .then((result) => upsertMessage(result.data, { rest: true }))
    .catch((err) => {
      button.disabled = false;
      $("reply-error").textContent = fmt(t("Retry failed: %(error)s"), { error: err.message });
    });
}

// ------------------------------------------------------------------ history --

function loadHistory(first) {
  const uuid = state.openDesk;
  const token = conv.token;
  if (!uuid || (conv.historyLoading && !first)) return Promise.resolve();
  const url = first ? "/api/help-desks/" + uuid + "/history/?page_size=30" : conv.historyNext;
  if (!url) return Promise.resolve();
  conv.historyLoading = true;
  $("message-list").setAttribute("aria-busy", "true"); // a page of history is not news
  $("history-status").textContent = first ? t("Loading messages…") : t("Loading older messages…");
  const box = $("history");
  const notes = first ? api("GET", "/api/help-desks/" + uuid + "/notes/?page_size=200").catch(() => ({ data: [] })) : null;
  return Promise.all([api("GET", url), notes])
    .then(([result, noteResult]) => {
      if (token !== conv.token) return;
      const before = box.scrollHeight - box.scrollTop;
      for (const msg of result.data) upsertMessage(msg, { fromHistory: true, rest: true });
      if (noteResult && Array.isArray(noteResult.data)) for (const note of noteResult.data) upsertNote(note, { fromHistory: true });
      conv.historyNext = result.next;
      $("history-status").textContent = result.next ? "" : conv.items.size ? t("Beginning of the conversation.") : t("No messages yet.");
      if (first) box.scrollTop = box.scrollHeight;
      else box.scrollTop = box.scrollHeight - before; // keep what the agent was reading in place
    })
    .catch((err) => {
      if (token === conv.token) $("history-status").textContent = fmt(t("Could not load messages: %(error)s"), { error: err.message });
    })
    .then(() => {
      if (token !== conv.token) return;
      conv.historyLoading = false;
      $("message-list").removeAttribute("aria-busy");
      // Not enough to scroll yet? Fetch older pages until there is (or none is left).
      if (conv.historyNext && box.clientHeight > 0 && box.scrollHeight <= box.clientHeight + 20) loadHistory(false);
    });
}

$("history").addEventListener("scroll", () => {
  if ($("history").scrollTop < 120 && conv.historyNext && !conv.historyLoading) loadHistory(false);
});

// ------------------------------------------------------------- open / close --

export function renderConvHeader() {
  const desk = state.desks.get(state.openDesk);
  if (!desk) return;
  const client = desk.client || {};
  $("conv-title").textContent = clientName(client);
  const status = desk.status === "closed" ? "resolved" : desk.status;
  $("conv-sub").textContent = [client.phone, status && status !== "open" ? STATUS_LABEL[status] || status : null].filter(Boolean).join(" · ");
}

export function openDesk(uuid, options) {
  options = options || {};
  const previous = state.openDesk;
  state.openDesk = uuid;
  conv.items = new Map();
  conv.nodes = new Map();
  conv.historyNext = null;
  conv.token += 1;
  clear($("message-list"));
  $("conv").hidden = false;
  $("conv-empty").hidden = true;
  $("reply-error").textContent = "";
  $("typing").textContent = "";
  $("tab-chat").dataset.view = "conversation";
  if (!options.keepHash) history.replaceState(null, "", "#" + encodeURIComponent(state.org) + "/" + uuid);
  renderConvHeader();
  currentChanged(previous);
  emit("desk-opened", state.desks.get(uuid));
  const load = loadHistory(true);
  markRead();
  if (!options.keepFocus) $("reply-text").focus();
  return load;
}

export function closeDesk() {
  const previous = state.openDesk;
  state.openDesk = null;
  conv.token += 1;
  conv.historyLoading = false;
  $("message-list").removeAttribute("aria-busy");
  $("conv").hidden = true;
  $("conv-empty").hidden = false;
  $("tab-chat").dataset.view = "inbox";
  if (state.org) history.replaceState(null, "", "#" + encodeURIComponent(state.org));
  currentChanged(previous);
  emit("desk-closed");
}

listen("open-desk", (uuid) => openDesk(uuid));
listen("close-desk", () => closeDesk());
listen("open-desk-changed", () => {
  renderConvHeader();
  maybeMarkRead();
});

$("conv-back").addEventListener("click", () => {
  const uuid = state.openDesk;
  closeDesk();
  const button = uuid && document.querySelector('#inbox-list button[data-desk="' + CSS.escape(uuid) + '"]');
  if (button) button.focus();
});

export function markRead() {
  const uuid = state.openDesk;
  if (!uuid) return;
  markedRead(uuid);
  api("POST", "/api/help-desks/" + uuid + "/read/")
    .then((result) => upsertDesk(result.data, { rest: true }))
    .catch(() => {
      /* best effort: the count stays until the next open */
    });
}

// A message arriving in the open conversation while the agent looks at it is read.
let readTimer = null;
export function maybeMarkRead(force) {
  const desk = state.desks.get(state.openDesk);
  if (!desk || !readingNow()) return;
  const had = force === true || unreadOf(desk.uuid) > 0 || desk.unread_count > 0 || desk.unread > 0;
  markedRead(desk.uuid);
  if (!had) return; // nothing for the server to clear
  clearTimeout(readTimer);
  readTimer = setTimeout(() => {
    if (!send({ type: "read", help_desk: state.openDesk })) markRead();
  }, 300);
}
document.addEventListener("visibilitychange", () => maybeMarkRead());

let typingTimer = null;
listen("typing", (data) => {
  if (!data || data.help_desk !== state.openDesk || data.agent === config.username) return;
  $("typing").textContent = fmt(t("%(name)s is typing…"), { name: data.agent || t("Someone") });
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => {
    $("typing").textContent = "";
  }, 4000);
});

export const conversationDebug = {
  shownItems: () => conv.items.size,
};
