/* The websocket client: connect, catch up, never apply twice.
 *
 * - the REST data does not wait for the websocket: if no `hello` comes within a moment
 *   (or the socket fails) the data loads anyway and the page says live updates are
 *   unavailable; each `hello` that starts a stream (first or after resync) loads the
 *   data again, AFTER it (its id is what that data is at least as new as); loads never
 *   overlap, and frames that arrive while data loads are applied after it;
 * - every logged frame carries an id: frames at or below the last id seen are ignored,
 *   so a replay after a reconnect never applies anything twice;
 * - on `resync_required` everything shown is loaded again.
 */
import { applyEvent, emit, loaders, state } from "./core.js";
import { $, fatal, notify } from "./dom.js";
import { t } from "./i18n.js";

const HEARTBEAT_MS = 20000;
const HELLO_GRACE_MS = 1500; // no hello by then: load the data without live updates
const PONG_TIMEOUT_MS = 8000;
const CLOSE_FATAL = {
  4401: t("Your key is not valid."),
  4403: t("You are not a member of this organization (or your session ended)."),
  4404: t("Unknown organization."),
};

const rt = {
  ws: null,
  lastEventId: null,
  loading: false,
  pending: [],
  attempt: 0,
  reconnectTimer: null,
  heartbeatTimer: null,
  pongTimer: null,
  hadConnection: false,
  generation: 0,
  resyncPending: false, // `resync_required` seen, its `hello` not yet
  loadToken: 0,
  loadChain: Promise.resolve(),
  helloTimer: null,
  fallbackLoaded: false, // data loaded without a hello in this organization
};

export function setConn(stateName, text) {
  const badge = $("conn-status");
  badge.dataset.state = stateName;
  badge.textContent = text;
  const warning = $("live-warning");
  if (stateName === "live" || stateName === "closed") warning.hidden = true;
  else if (stateName === "offline") {
    warning.textContent = t("You are offline. Live updates resume when the connection is back; what is shown may be out of date.");
    warning.hidden = false;
  } else if (stateName === "reconnecting" || rt.fallbackLoaded) {
    warning.textContent = t("Live updates unavailable, retrying… What is shown may be out of date.");
    warning.hidden = false;
  }
}

// The socket is slow to say hello (or failing): show the data anyway, once per organization.
function loadWithoutLive() {
  clearTimeout(rt.helloTimer);
  rt.helloTimer = null;
  if (rt.fallbackLoaded || rt.lastEventId !== null || !state.org) return;
  rt.fallbackLoaded = true;
  const badge = $("conn-status");
  setConn(badge.dataset.state, badge.textContent); // shows the warning
  loadAll();
}

function socketUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  let url = proto + "//" + location.host + "/ws/chat/" + encodeURIComponent(state.org) + "/";
  if (rt.lastEventId !== null) url += "?last_event_id=" + rt.lastEventId;
  return url;
}

function connect() {
  clearTimeout(rt.reconnectTimer);
  rt.reconnectTimer = null;
  if (!state.org) return;
  if (navigator.onLine === false) {
    setConn("offline", t("Offline"));
    return; // the `online` event reconnects
  }
  const generation = rt.generation;
  const ws = new WebSocket(socketUrl());
  rt.ws = ws;
  setConn(rt.hadConnection ? "reconnecting" : "connecting", rt.hadConnection ? t("Reconnecting…") : t("Connecting…"));
  ws.onmessage = (event) => {
    if (rt.ws !== ws || generation !== rt.generation) return;
    armHeartbeat();
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    onFrame(frame);
  };
  ws.onclose = (event) => {
    if (rt.ws === ws) socketLost(event.code);
  };
  ws.onerror = () => {
    /* onclose follows */
  };
}

function detachSocket() {
  const ws = rt.ws;
  rt.ws = null;
  clearTimeout(rt.heartbeatTimer);
  clearTimeout(rt.pongTimer);
  if (ws) {
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close();
    } catch (e) {
      /* already closed */
    }
  }
}

function socketLost(code) {
  detachSocket();
  if (rt.lastEventId === null && !CLOSE_FATAL[code]) loadWithoutLive();
  if (CLOSE_FATAL[code]) {
    setConn("closed", t("Disconnected"));
    fatal(CLOSE_FATAL[code]);
    return;
  }
  if (navigator.onLine === false) {
    setConn("offline", t("Offline"));
    return;
  }
  const delay = Math.min(10000, 500 * Math.pow(2, rt.attempt)) * (0.5 + Math.random() / 2);
  rt.attempt += 1;
  setConn("reconnecting", t("Reconnecting…"));
  rt.reconnectTimer = setTimeout(connect, delay);
}

// Chromium keeps a websocket "open" through a network drop; a ping that gets no
// answer is how we notice, and the browser's offline event is the fast path.
function armHeartbeat() {
  clearTimeout(rt.pongTimer);
  clearTimeout(rt.heartbeatTimer);
  rt.heartbeatTimer = setTimeout(() => {
    send({ type: "ping" });
    rt.pongTimer = setTimeout(() => socketLost(1006), PONG_TIMEOUT_MS);
  }, HEARTBEAT_MS);
}

export function send(frame) {
  if (rt.ws && rt.ws.readyState === WebSocket.OPEN) {
    rt.ws.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

window.addEventListener("offline", () => {
  if (rt.ws) socketLost(1006);
  setConn("offline", t("Offline"));
});
window.addEventListener("online", () => {
  if (!rt.ws && state.org) {
    rt.attempt = 0;
    connect();
  }
});

function onFrame(frame) {
  const type = frame && frame.type;
  if (type === "hello") {
    const first = rt.lastEventId === null;
    const resync = rt.resyncPending;
    rt.resyncPending = false;
    // After a resync the server's counter may even have restarted (Redis lost it):
    // take its id as is; otherwise never move backwards.
    if (first || resync) rt.lastEventId = frame.last_event_id || 0;
    else rt.lastEventId = Math.max(rt.lastEventId, frame.last_event_id || 0);
    clearTimeout(rt.helloTimer);
    rt.helloTimer = null;
    rt.attempt = 0;
    setConn("live", t("Live"));
    fatal("");
    if (first || resync) {
      const late = first && rt.fallbackLoaded; // data shown before live updates worked
      loadAll().then(() => {
        if (!first) notify(t("Reconnected; reloaded the latest data."));
        else if (late) notify(t("Live updates connected; reloaded the latest data."));
      });
    } else if (rt.hadConnection) {
      notify(t("Reconnected."));
    }
    rt.hadConnection = true;
    return;
  }
  if (type === "resync_required") {
    rt.resyncPending = true;
    return;
  }
  if (type === "pong" || type === "error") return;
  if (type === "typing") {
    emit("typing", parseData(frame.data));
    return;
  }
  if (typeof frame.id !== "number") return;
  if (rt.lastEventId !== null && frame.id <= rt.lastEventId) return; // replayed twice
  rt.lastEventId = frame.id;
  const data = parseData(frame.data);
  if (data === undefined) return;
  if (rt.loading) rt.pending.push([frame, data]);
  else applyEvent(frame, data);
}

function parseData(data) {
  if (typeof data !== "string") return data;
  try {
    return JSON.parse(data);
  } catch (e) {
    return undefined;
  }
}

// Load everything the page shows; frames arriving meanwhile wait in `pending`. Loads
// are chained: an older answer (e.g. one started before the hello) can never land on
// top of a newer one. A load stuck for 15 s no longer holds the next one back.
export function loadAll() {
  const token = (rt.loadToken += 1);
  rt.loading = true;
  const run = Promise.race([rt.loadChain, new Promise((resolve) => setTimeout(resolve, 15000))]).then(() => {
    if (token !== rt.loadToken) return; // superseded before it started: skip it
    return Promise.all(
      loaders.map((load) =>
        Promise.resolve()
          .then(load)
          .catch((err) => console.error("console: load failed", err))
      )
    );
  });
  rt.loadChain = run;
  return run.then(() => {
    if (token !== rt.loadToken) return; // a newer load (resync, other organization) owns the queue
    rt.loading = false;
    const pending = rt.pending;
    rt.pending = [];
    for (const [frame, data] of pending) applyEvent(frame, data);
  });
}

// A new organization: a fresh stream (not a resume), its hello fixes the id the REST
// data is at least as new as... but the data does not wait for it forever.
export function startStream() {
  rt.generation += 1;
  detachSocket();
  clearTimeout(rt.reconnectTimer);
  rt.lastEventId = null;
  rt.hadConnection = false;
  rt.resyncPending = false;
  rt.pending = [];
  rt.attempt = 0;
  rt.fallbackLoaded = false;
  clearTimeout(rt.helloTimer);
  connect();
  rt.helloTimer = setTimeout(loadWithoutLive, HELLO_GRACE_MS);
}

export const debugHooks = {
  lastEventId: () => rt.lastEventId,
  dropSocket: () => {
    if (rt.ws) socketLost(1006);
  },
  connected: () => !!(rt.ws && rt.ws.readyState === WebSocket.OPEN && $("conn-status").dataset.state === "live"),
};
