/* The inbox: views (Mine / Unassigned / All, by status and team) with counts, and a
 * list that changes ONE row per event. Rows are keyed by help desk uuid; an event
 * patches its row in place and moves it to its place in the order (a binary search in
 * `order`), so the cost of an event does not grow with the number of conversations
 * (docs/console.md, "Rendering that scales"). Only a load or a view change rebuilds.
 *
 * Unread counts are this agent's own: REST answers carry them; live, the page counts a
 * client message in a conversation it is not showing, and clears it on read (here or,
 * through `help_desk_read`, in this agent's other tabs).
 */
import { api, orgQuery } from "./api.js";
import { emit, listen, on, state } from "./core.js";
import { $, announce, clear, el, formatTime, setBadge, ts } from "./dom.js";
import { fmt, t, tn } from "./i18n.js";
import { clientName, isMe, isMeById, people, teamName, userName } from "./people.js";
import { countsSoon, loadCounts, matches, normalStatus, renderCounts, viewQuery, views } from "./views.js";

export { normalStatus };

export const STATUS_LABEL = {
  open: t("Open"),
  pending: t("Pending"),
  snoozed: t("Snoozed"),
  resolved: t("Resolved"),
  closed: t("Resolved"),
};

const inbox = {
  rows: new Map(), // uuid -> <li> shown
  order: [], // uuids shown, in display order
  next: null, // cursor of the next page
  unread: new Map(), // uuid -> this agent's unread count
  unreadTotal: 0,
  pageSize: 50,
};

function before(a, b) {
  // newest activity first; the uuid breaks ties so the order is total
  const ta = ts(a.last_activity_at || a.created_at);
  const tb = ts(b.last_activity_at || b.created_at);
  if (ta !== tb) return ta > tb;
  return a.uuid > b.uuid;
}

function positionOf(desk) {
  let lo = 0;
  let hi = inbox.order.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(state.desks.get(inbox.order[mid]), desk)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ------------------------------------------------------------------ unread --

export function unreadOf(uuid) {
  return inbox.unread.get(uuid) || 0;
}

function setUnread(uuid, count) {
  const old = unreadOf(uuid);
  if (old === count) return;
  if (count) inbox.unread.set(uuid, count);
  else inbox.unread.delete(uuid);
  inbox.unreadTotal += count - old;
  if (state.desks.has(uuid)) refreshRow(uuid);
  emit("unread", inbox.unreadTotal);
}

function restUnread(desk) {
  const count = desk.unread !== undefined ? desk.unread : desk.unread_count;
  return typeof count === "number" ? count : null;
}

export function markedRead(uuid) {
  setUnread(uuid, 0);
}

// --------------------------------------------------------------------- rows --

export function senderLabel(msg) {
  const sender = msg.sender;
  if (isMe(sender) || (!sender && ownMessages.has(msg.uuid))) return t("You");
  // a username: the members list gives the name people know
  const member = typeof sender === "string" && people.members.find((m) => m.username === sender);
  return (member && member.name) || userName(sender) || t("Agent");
}
export const ownMessages = new Set(); // uuids of messages sent from this page

function preview(desk) {
  const msg = desk.last_message;
  if (!msg) return t("No messages yet");
  const text = msg.message || (msg.file ? t("Attachment") : "");
  return (msg.type === "sent" ? senderLabel(msg) + ": " : "") + text;
}

function rowContent(desk) {
  const unread = unreadOf(desk.uuid);
  const status = normalStatus(desk.status);
  const assignee = userName(desk.assignee);
  const tags = [];
  if (status !== "open") tags.push(el("span", { className: "chip", dataset: { status }, text: STATUS_LABEL[status] || status }));
  if (assignee) tags.push(el("span", { className: "desk-assignee", text: isMe(desk.assignee) ? t("you") : assignee }));
  else if (desk.team) tags.push(el("span", { className: "desk-assignee", text: teamName(desk.team) }));
  return [
    el("span", { className: "desk-top" }, [
      el("span", { className: "desk-name", text: clientName(desk.client) }),
      el("time", { className: "desk-time", datetime: desk.last_activity_at, text: formatTime(desk.last_activity_at) }),
    ]),
    el("span", { className: "desk-bottom" }, [
      el("span", { className: "desk-last", text: preview(desk) }),
      unread
        ? el("span", { className: "unread-count", dataset: { count: String(unread) } }, [
            el("span", { text: String(unread) }),
            el("span", { className: "visually-hidden", text: " " + t("unread") }),
          ])
        : null,
    ]),
    tags.length ? el("span", { className: "desk-tags" }, tags) : null,
  ];
}

function buildRow(desk) {
  const button = el("button", { type: "button", className: "desk", dataset: { desk: desk.uuid } });
  const li = el("li", { dataset: { desk: desk.uuid } }, [button]);
  fillRow(li, desk);
  return li;
}

// The <button> stays (so does its focus); only what it shows is replaced.
function fillRow(li, desk) {
  const button = li.firstChild;
  button.className = "desk" + (unreadOf(desk.uuid) ? " unread" : "");
  button.dataset.status = normalStatus(desk.status);
  if (desk.uuid === state.openDesk) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
  clear(button);
  for (const child of rowContent(desk)) if (child) button.appendChild(child);
}

function refreshRow(uuid) {
  const li = inbox.rows.get(uuid);
  const desk = state.desks.get(uuid);
  if (li && desk) fillRow(li, desk);
}

function removeRow(uuid) {
  const li = inbox.rows.get(uuid);
  if (!li) return;
  const index = inbox.order.indexOf(uuid);
  if (index >= 0) inbox.order.splice(index, 1);
  inbox.rows.delete(uuid);
  if (li.contains(document.activeElement)) {
    const near = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    if (near) near.firstChild.focus();
  } else li.remove();
}

// Put one desk where it belongs (or take it out): the one-row update.
function placeRow(desk) {
  const list = $("inbox-list");
  let li = inbox.rows.get(desk.uuid);
  if (!matches(desk) && desk.uuid !== state.openDesk) {
    removeRow(desk.uuid);
    return;
  }
  if (li) {
    const index = inbox.order.indexOf(desk.uuid);
    if (index >= 0) inbox.order.splice(index, 1);
    fillRow(li, desk);
  } else {
    li = buildRow(desk);
    inbox.rows.set(desk.uuid, li);
  }
  const at = positionOf(desk);
  inbox.order.splice(at, 0, desk.uuid);
  const next = at + 1 < inbox.order.length ? inbox.rows.get(inbox.order[at + 1]) : null;
  if (li.nextSibling !== next || li.parentNode !== list) {
    const hadFocus = li.contains(document.activeElement);
    list.insertBefore(li, next);
    if (hadFocus) li.firstChild.focus();
  }
  $("inbox-empty").hidden = true;
}

// A whole rebuild: only after a load or a change of view.
function renderAll() {
  const list = $("inbox-list");
  const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.desk : null;
  const desks = Array.from(state.desks.values()).filter((d) => matches(d) || d.uuid === state.openDesk);
  desks.sort((a, b) => (before(a, b) ? -1 : 1));
  inbox.rows = new Map();
  inbox.order = desks.map((d) => d.uuid);
  const fragment = document.createDocumentFragment();
  for (const desk of desks) {
    const li = buildRow(desk);
    inbox.rows.set(desk.uuid, li);
    fragment.appendChild(li);
  }
  clear(list);
  list.appendChild(fragment);
  $("inbox-empty").hidden = desks.length > 0;
  $("inbox-more").hidden = !inbox.next;
  if (focused && inbox.rows.has(focused)) inbox.rows.get(focused).firstChild.focus();
}

export function currentChanged(previous) {
  if (previous) refreshRow(previous);
  if (state.openDesk) {
    const desk = state.desks.get(state.openDesk);
    if (desk && !inbox.rows.has(state.openDesk)) placeRow(desk);
    else refreshRow(state.openDesk);
  }
  if (previous && previous !== state.openDesk) {
    const desk = state.desks.get(previous);
    if (desk) placeRow(desk);
  }
}

// ------------------------------------------------------------------- state --

// Events arrive in order and always apply. A REST answer (read, detail) may have been
// computed before an event that already arrived: it must not roll the entry back.
export function upsertDesk(desk, options) {
  if (!desk || !desk.uuid) return false;
  if (desk.organization && desk.organization !== state.org) return false;
  const known = state.desks.get(desk.uuid);
  const rest = options && options.rest;
  if (known && rest && ts(known.updated_at) > ts(desk.updated_at)) return false;
  state.desks.set(desk.uuid, desk);
  if (rest) {
    const count = restUnread(desk);
    if (count !== null) setUnread(desk.uuid, desk.uuid === state.openDesk && readingNow() ? 0 : count);
  }
  placeRow(desk);
  return true;
}

export function readingNow() {
  return !$("tab-chat").hidden && document.visibilityState !== "hidden";
}

function listUrl() {
  return "/api/help-desks/?" + orgQuery(state.org) + "&page_size=" + inbox.pageSize + viewQuery();
}

function takePage(result) {
  for (const desk of result.data) {
    const known = state.desks.get(desk.uuid);
    if (known && ts(known.updated_at) > ts(desk.updated_at)) continue;
    state.desks.set(desk.uuid, desk);
    const count = restUnread(desk);
    if (count !== null) {
      const old = unreadOf(desk.uuid);
      if (count) inbox.unread.set(desk.uuid, count);
      else inbox.unread.delete(desk.uuid);
      inbox.unreadTotal += count - old;
    }
  }
  inbox.next = result.next;
}

export function loadInbox() {
  const org = state.org;
  return api("GET", listUrl()).then((result) => {
    if (org !== state.org) return;
    const open = state.openDesk && state.desks.get(state.openDesk);
    state.desks = new Map();
    inbox.unread = new Map();
    inbox.unreadTotal = 0;
    if (open) state.desks.set(open.uuid, open);
    takePage(result);
    renderAll();
    emit("unread", inbox.unreadTotal);
    loadCounts();
  });
}

export function loadMore() {
  if (!inbox.next) return Promise.resolve(false);
  const org = state.org;
  return api("GET", inbox.next).then((result) => {
    if (org !== state.org) return false;
    takePage(result);
    for (const desk of result.data) placeRow(state.desks.get(desk.uuid));
    $("inbox-more").hidden = !inbox.next;
    emit("unread", inbox.unreadTotal);
    return !!inbox.next;
  });
}

export function resetInbox() {
  inbox.rows = new Map();
  inbox.order = [];
  inbox.next = null;
  inbox.unread = new Map();
  inbox.unreadTotal = 0;
  views.counts = null;
  clear($("inbox-list"));
  renderCounts();
}

listen("view-changed", () => {
  inbox.next = null;
  renderAll(); // what the page has, at once; the server's answer follows
  loadInbox();
});

$("inbox-more").addEventListener("click", () => loadMore());
$("inbox-list").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-desk]");
  if (button) emit("open-desk", button.dataset.desk);
});

// ------------------------------------------------------------------- events --

on("update_helpdesk", (desk) => {
  const before = state.desks.get(desk.uuid);
  const msg = desk.last_message;
  const isNew = msg && msg.type === "received" && (!before || !before.last_message || before.last_message.uuid !== msg.uuid);
  if (isNew && !(desk.uuid === state.openDesk && readingNow())) {
    announce(fmt(t("New message from %(name)s"), { name: clientName(desk.client) }));
  }
  if (!before) emit("new-desk", desk);
  // The broadcast payload's unread (if any) is nobody's own: the page keeps its count.
  upsertDesk(desk);
  countsSoon();
  if (desk.uuid === state.openDesk) emit("open-desk-changed", desk);
});

on("new_message", (msg) => {
  if (!msg || msg.type !== "received" || !msg.help_desk) return;
  if (msg.help_desk === state.openDesk && readingNow()) return; // read as it arrives
  // Queued while the inbox loaded, it may be in the REST count already: the loaded desk's
  // last message is then this one or a newer one.
  const known = state.desks.get(msg.help_desk);
  const last = known && known.last_message;
  if (last && (last.uuid === msg.uuid || ts(last.created_at) > ts(msg.created_at))) return;
  setUnread(msg.help_desk, unreadOf(msg.help_desk) + 1);
  emit("client-message", msg);
});

on("help_desk_read", (data) => {
  if (data && data.help_desk && isMeById(data.agent)) setUnread(data.help_desk, 0);
});

on("delete_helpdesk", (gone) => {
  if (!state.desks.has(gone.uuid)) return;
  state.desks.delete(gone.uuid);
  setUnread(gone.uuid, 0);
  removeRow(gone.uuid);
  $("inbox-empty").hidden = inbox.order.length > 0;
  if (state.openDesk === gone.uuid) emit("close-desk");
  countsSoon();
});

listen("unread", (total) => {
  document.title = (total ? "(" + total + ") " : "") + t("Agent console");
  setBadge($("inbox-unread"), total, tn("unread message", "unread messages", total));
});


export const inboxDebug = {
  shownCount: () => inbox.order.length,
  // Loads every page (200 at a time), as "Load more" would: for the rendering benchmark.
  loadEverything: () => {
    inbox.pageSize = 200;
    const step = () => loadMore().then((more) => (more ? step() : inbox.order.length));
    return loadInbox().then(step);
  },
  // The cost of the old way (rebuilding every row), for the benchmark's baseline: the
  // script alone, then with the layout it forces.
  rebuildTiming: () => {
    const started = performance.now();
    renderAll();
    const script = performance.now() - started;
    void $("inbox-list").offsetHeight;
    return { script, withLayout: performance.now() - started };
  },
  orderMatchesDom: () => {
    const dom = Array.from($("inbox-list").children, (li) => li.dataset.desk);
    return dom.length === inbox.order.length && dom.every((uuid, i) => uuid === inbox.order[i]);
  },
};
