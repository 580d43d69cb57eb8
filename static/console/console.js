/* The agent console (issue #5): plain JavaScript on the REST API and the websocket hub.
 *
 * Rules this file keeps:
 * - user text reaches the DOM only through textContent / attributes, never innerHTML;
 * - the REST data does not wait for the websocket: if no `hello` comes within a moment (or
 *   the socket fails) the data loads anyway and the page says live updates are
 *   unavailable; each `hello` that starts a stream (first or after resync) loads the data
 *   again, AFTER it (its id is what that data is at least as new as); loads never
 *   overlap, and frames that arrive while data loads are applied after it;
 * - every logged frame carries an id: frames at or below the last id seen are ignored,
 *   so a replay after a reconnect never applies anything twice;
 * - on `resync_required` everything shown is loaded again.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("console-config").textContent);

  // ---------------------------------------------------------------- small helpers --

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, props, children) {
    var node = document.createElement(tag);
    if (props) {
      Object.keys(props).forEach(function (key) {
        var value = props[key];
        if (value === null || value === undefined || value === false) return;
        if (key === "text") node.textContent = value;
        else if (key === "className") node.className = value;
        else if (key === "dataset") Object.assign(node.dataset, value);
        else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
        else node.setAttribute(key, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function getCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return getCookie("csrftoken") || (input ? input.value : "");
  }

  function safeUrl(url) {
    // Only same-site paths or http(s) URLs become links (never javascript: and friends).
    if (typeof url !== "string") return null;
    if (url.charAt(0) === "/" && url.charAt(1) !== "/") return url;
    try {
      var parsed = new URL(url, location.href);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function formatTime(iso) {
    if (!iso) return "";
    var date = new Date(iso);
    if (isNaN(date.getTime())) return "";
    var now = new Date();
    var sameDay = date.toDateString() === now.toDateString();
    return sameDay
      ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : date.toLocaleDateString([], { month: "short", day: "numeric" }) +
          " " +
          date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  var noticeTimer = null;
  function notify(text, kind) {
    var box = $("notice");
    box.textContent = text;
    box.dataset.kind = kind || "info";
    box.classList.add("visible");
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () {
      box.classList.remove("visible");
      box.textContent = "";
    }, 4000);
  }

  function fatal(text) {
    var box = $("fatal");
    box.textContent = text;
    box.hidden = !text;
  }

  // ------------------------------------------------------------------------ REST --

  function ApiError(status, body) {
    this.status = status;
    this.body = body;
    var err = body && body.error;
    var message = (err && err.message) || "Request failed (" + status + ").";
    if (err && err.fields) {
      var details = Object.keys(err.fields).map(function (field) {
        return field + ": " + [].concat(err.fields[field]).join(" ");
      });
      if (details.length) message += " " + details.join("; ");
    }
    this.message = message;
  }

  function parseNextLink(header) {
    if (!header) return null;
    var parts = header.split(",");
    for (var i = 0; i < parts.length; i++) {
      var match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(parts[i]);
      if (match) return match[1];
    }
    return null;
  }

  function api(method, url, body) {
    var options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken();
    if (body instanceof FormData) {
      options.body = body;
    } else if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(url, options).then(function (response) {
      if (response.status === 401) {
        location.href = "/"; // session expired: back to the login form
        throw new ApiError(401, null);
      }
      var next = parseNextLink(response.headers.get("Link"));
      var parse = response.status === 204 ? Promise.resolve(null) : response.json().catch(function () { return null; });
      return parse.then(function (data) {
        if (!response.ok) throw new ApiError(response.status, data);
        return { data: data, next: next };
      });
    });
  }

  // ----------------------------------------------------------------------- state --

  var state = {
    orgs: [],
    org: null, // slug
    desks: new Map(), // uuid -> help desk object
    inboxNext: null,
    openDesk: null, // uuid of the open help desk
    messages: new Map(), // uuid -> message of the open help desk
    messageNodes: new Map(), // uuid -> <li>
    historyNext: null,
    historyLoading: false,
    historyToken: 0,
    // realtime
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
    applied: [], // event ids applied, for diagnostics (window.consoleDebug)
    resyncPending: false, // `resync_required` seen, its `hello` not yet
    wantDesk: null, // help desk from the URL hash, opened once the inbox has loaded
    loadToken: 0,
    loadChain: Promise.resolve(), // loads run one after another, never overlapping
    helloTimer: null,
    fallbackLoaded: false, // data loaded without a hello in this organization
  };

  var handlers = {}; // event type -> [function(data, frame)] (panels register here)
  function on(type, fn) {
    (handlers[type] = handlers[type] || []).push(fn);
  }

  // ------------------------------------------------------------------- websocket --

  var HEARTBEAT_MS = 20000;
  var HELLO_GRACE_MS = 1500; // no hello by then: load the data without live updates
  var PONG_TIMEOUT_MS = 8000;
  var CLOSE_FATAL = { 4401: "Your key is not valid.", 4403: "You are not a member of this organization (or your session ended).", 4404: "Unknown organization." };

  function setConn(stateName, text) {
    var badge = $("conn-status");
    badge.dataset.state = stateName;
    badge.textContent = text;
    var warning = $("live-warning");
    if (stateName === "live" || stateName === "closed") warning.hidden = true;
    else if (stateName === "offline") {
      warning.textContent = "You are offline. Live updates resume when the connection is back; what is shown may be out of date.";
      warning.hidden = false;
    } else if (stateName === "reconnecting" || state.fallbackLoaded) {
      warning.textContent = "Live updates unavailable, retrying… What is shown may be out of date.";
      warning.hidden = false;
    }
  }

  // The socket is slow to say hello (or failing): show the data anyway, once per organization.
  function loadWithoutLive() {
    clearTimeout(state.helloTimer);
    state.helloTimer = null;
    if (state.fallbackLoaded || state.lastEventId !== null || !state.org) return;
    state.fallbackLoaded = true;
    var badge = $("conn-status");
    setConn(badge.dataset.state, badge.textContent); // shows the warning
    loadAll();
  }

  function socketUrl() {
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var url = proto + "//" + location.host + "/ws/chat/" + encodeURIComponent(state.org) + "/";
    if (state.lastEventId !== null) url += "?last_event_id=" + state.lastEventId;
    return url;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = null;
    if (!state.org) return;
    if (navigator.onLine === false) {
      setConn("offline", "Offline");
      return; // the `online` event reconnects
    }
    var generation = state.generation;
    var ws = new WebSocket(socketUrl());
    state.ws = ws;
    setConn(state.hadConnection ? "reconnecting" : "connecting", state.hadConnection ? "Reconnecting…" : "Connecting…");
    ws.onmessage = function (event) {
      if (state.ws !== ws || generation !== state.generation) return;
      armHeartbeat();
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = function (event) {
      if (state.ws !== ws) return;
      socketLost(event.code);
    };
    ws.onerror = function () {
      /* onclose follows */
    };
  }

  function detachSocket() {
    var ws = state.ws;
    state.ws = null;
    clearTimeout(state.heartbeatTimer);
    clearTimeout(state.pongTimer);
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
    if (state.lastEventId === null && !CLOSE_FATAL[code]) loadWithoutLive();
    if (CLOSE_FATAL[code]) {
      setConn("closed", "Disconnected");
      fatal(CLOSE_FATAL[code]);
      return;
    }
    if (navigator.onLine === false) {
      setConn("offline", "Offline");
      return;
    }
    var delay = Math.min(10000, 500 * Math.pow(2, state.attempt)) * (0.5 + Math.random() / 2);
    state.attempt += 1;
    setConn("reconnecting", "Reconnecting…");
    state.reconnectTimer = setTimeout(connect, delay);
  }

  // Chromium keeps a websocket "open" through a network drop; a ping that gets no
  // answer is how we notice, and the browser's offline event is the fast path.
  function armHeartbeat() {
    clearTimeout(state.pongTimer);
    clearTimeout(state.heartbeatTimer);
    state.heartbeatTimer = setTimeout(function () {
      send({ type: "ping" });
      state.pongTimer = setTimeout(function () {
        socketLost(1006);
      }, PONG_TIMEOUT_MS);
    }, HEARTBEAT_MS);
  }

  function send(frame) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  window.addEventListener("offline", function () {
    if (state.ws) socketLost(1006);
    setConn("offline", "Offline");
  });
  window.addEventListener("online", function () {
    if (!state.ws && state.org) {
      state.attempt = 0;
      connect();
    }
  });

  function onFrame(frame) {
    var type = frame && frame.type;
    if (type === "hello") {
      var first = state.lastEventId === null;
      var resync = state.resyncPending;
      state.resyncPending = false;
      // After a resync the server's counter may even have restarted (Redis lost it):
      // take its id as is; otherwise never move backwards.
      if (first || resync) state.lastEventId = frame.last_event_id || 0;
      else state.lastEventId = Math.max(state.lastEventId, frame.last_event_id || 0);
      clearTimeout(state.helloTimer);
      state.helloTimer = null;
      state.attempt = 0;
      setConn("live", "Live");
      fatal("");
      if (first || resync) {
        var late = first && state.fallbackLoaded; // data shown before live updates worked
        loadAll().then(function () {
          if (!first) notify("Reconnected; reloaded the latest data.");
          else if (late) notify("Live updates connected; reloaded the latest data.");
        });
      } else if (state.hadConnection) {
        notify("Reconnected.");
      }
      state.hadConnection = true;
      return;
    }
    if (type === "resync_required") {
      state.resyncPending = true;
      return;
    }
    if (type === "pong" || type === "error") return;
    if (type === "typing") {
      showTyping(frame);
      return;
    }
    if (typeof frame.id !== "number") return;
    if (state.lastEventId !== null && frame.id <= state.lastEventId) return; // replayed twice
    state.lastEventId = frame.id;
    var data = frame.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch (e) {
        return;
      }
    }
    if (state.loading) state.pending.push([frame, data]);
    else applyEvent(frame, data);
  }

  function applyEvent(frame, data) {
    state.applied.push(frame.id);
    if (state.applied.length > 5000) state.applied.splice(0, 1000);
    (handlers[frame.type] || []).forEach(function (fn) {
      try {
        fn(data, frame);
      } catch (e) {
        if (window.console) console.error("console: handler for " + frame.type + " failed", e);
      }
    });
  }

  // Load everything the page shows; frames arriving meanwhile wait in `pending`. Loads
  // are chained: an older answer (e.g. one started before the hello) can never land on
  // top of a newer one. A load stuck for 15 s no longer holds the next one back.
  var loaders = []; // functions returning a promise (panels register here)
  function loadAll() {
    var token = (state.loadToken = (state.loadToken || 0) + 1);
    state.loading = true;
    var previous = state.loadChain;
    var run = Promise.race([
      previous,
      new Promise(function (resolve) {
        setTimeout(resolve, 15000);
      }),
    ]).then(function () {
      if (token !== state.loadToken) return; // superseded before it started: skip it
      return Promise.all(
        loaders.map(function (load) {
          return Promise.resolve()
            .then(load)
            .catch(function (err) {
              if (window.console) console.error("console: load failed", err);
            });
        })
      );
    });
    state.loadChain = run;
    return run.then(function () {
      if (token !== state.loadToken) return; // a newer load (resync, other organization) owns the queue
      state.loading = false;
      var pending = state.pending;
      state.pending = [];
      pending.forEach(function (item) {
        applyEvent(item[0], item[1]);
      });
    });
  }

  // ----------------------------------------------------------------------- inbox --

  function ts(iso) {
    var value = Date.parse(iso || "");
    return isNaN(value) ? 0 : value;
  }

  function deskOrder(a, b) {
    var ta = ts(a.last_activity_at || a.created_at);
    var tb = ts(b.last_activity_at || b.created_at);
    if (ta !== tb) return tb - ta;
    return a.uuid < b.uuid ? 1 : -1;
  }

  // Who wrote an outgoing message. The message REST object has no sender yet: a
  // `sender` field (username, or an object with one) is used when the API gives it;
  // otherwise "You" only for what this page sent, and "Agent" for the rest.
  var ownMessages = new Set(); // uuids of messages sent from this page
  function senderName(msg) {
    var sender = msg.sender;
    if (sender && typeof sender === "object") sender = sender.username || sender.name || null;
    if (typeof sender === "string" && sender) return sender === config.username ? "You" : sender;
    return ownMessages.has(msg.uuid) ? "You" : "Agent";
  }

  function authorOf(msg, desk) {
    if (msg.type === "sent") return senderName(msg);
    var client = (desk && desk.client) || {};
    return client.name || client.phone || "Client";
  }

  function deskPreview(desk) {
    var msg = desk.last_message;
    if (!msg) return "No messages yet";
    var text = msg.message || (msg.file ? "Attachment" : "");
    return (msg.type === "sent" ? senderName(msg) + ": " : "") + text;
  }

  // Inbox changes are announced (politely) to screen readers: a new client message in a
  // conversation other than the one being read (that one is the message log's job).
  function announce(text) {
    var region = $("announcer");
    region.textContent = "";
    // a fresh text node each time, so the same words twice are announced twice
    setTimeout(function () {
      region.textContent = text;
    }, 50);
  }

  function renderInbox() {
    var list = $("inbox-list");
    var focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.desk : null;
    var desks = Array.from(state.desks.values()).sort(deskOrder);
    clear(list);
    desks.forEach(function (desk) {
      var unread = desk.unread_count || 0;
      var client = desk.client || {};
      var button = el(
        "button",
        {
          type: "button",
          className: "desk" + (unread ? " unread" : ""),
          dataset: { desk: desk.uuid },
          "aria-current": desk.uuid === state.openDesk ? "true" : null,
          onclick: function () {
            openDesk(desk.uuid);
          },
        },
        [
          el("span", { className: "desk-top" }, [
            el("span", { className: "desk-name", text: client.name || client.phone || "Client" }),
            el("time", { className: "desk-time", datetime: desk.last_activity_at, text: formatTime(desk.last_activity_at) }),
          ]),
          el("span", { className: "desk-bottom" }, [
            el("span", { className: "desk-last", text: deskPreview(desk) }),
            unread
              ? el("span", { className: "unread-count", dataset: { count: String(unread) } }, [
                  el("span", { text: String(unread) }),
                  el("span", { className: "visually-hidden", text: " unread" }),
                ])
              : null,
          ]),
        ]
      );
      list.appendChild(el("li", { dataset: { desk: desk.uuid } }, [button]));
    });
    $("inbox-empty").hidden = desks.length > 0;
    $("inbox-more").hidden = !state.inboxNext;
    if (focused) {
      var again = list.querySelector('button[data-desk="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
    updateTitle();
  }

  function updateTitle() {
    var total = 0;
    state.desks.forEach(function (desk) {
      total += desk.unread_count || 0;
    });
    document.title = (total ? "(" + total + ") " : "") + "Agent console";
  }

  // Events arrive in order and always apply. A REST answer (read, detail) may have been
  // computed before an event that already arrived: it must not roll the entry back.
  function upsertDesk(desk, options) {
    if (!desk || !desk.uuid) return;
    if (desk.organization && desk.organization !== state.org) return;
    var known = state.desks.get(desk.uuid);
    if (known && options && options.rest && ts(known.updated_at) > ts(desk.updated_at)) return;
    state.desks.set(desk.uuid, desk);
  }

  function loadInbox() {
    var org = state.org;
    return api("GET", "/api/help-desks/?organization=" + encodeURIComponent(org) + "&page_size=50").then(function (result) {
      if (org !== state.org) return;
      state.desks = new Map();
      result.data.forEach(upsertDesk);
      state.inboxNext = result.next;
      renderInbox();
      if (state.openDesk) renderConvHeader();
    });
  }

  $("inbox-more").addEventListener("click", function () {
    if (!state.inboxNext) return;
    var org = state.org;
    api("GET", state.inboxNext).then(function (result) {
      if (org !== state.org) return;
      result.data.forEach(function (desk) {
        if (!state.desks.has(desk.uuid)) upsertDesk(desk);
      });
      state.inboxNext = result.next;
      renderInbox();
    });
  });

  on("update_helpdesk", function (desk) {
    var before = state.desks.get(desk.uuid);
    var msg = desk.last_message;
    var isNew = msg && msg.type === "received" &&
      (!before || !before.last_message || before.last_message.uuid !== msg.uuid);
    var reading = desk.uuid === state.openDesk && !$("tab-chat").hidden && document.visibilityState !== "hidden";
    if (isNew && !reading) {
      var client = desk.client || {};
      announce("New message from " + (client.name || client.phone || "a client"));
    }
    upsertDesk(desk);
    renderInbox();
    if (desk.uuid === state.openDesk) {
      renderConvHeader();
      maybeMarkRead();
    }
  });

  on("delete_helpdesk", function (gone) {
    if (!state.desks.has(gone.uuid)) return;
    state.desks.delete(gone.uuid);
    if (state.openDesk === gone.uuid) closeDesk();
    renderInbox();
  });

  // ---------------------------------------------------------------- conversation --

  function renderConvHeader() {
    var desk = state.desks.get(state.openDesk);
    if (!desk) return;
    var client = desk.client || {};
    $("conv-title").textContent = client.name || client.phone || "Client";
    $("conv-sub").textContent = [client.phone, desk.status === "closed" ? "closed" : null].filter(Boolean).join(" · ");
  }

  function openDesk(uuid, options) {
    options = options || {};
    state.openDesk = uuid;
    state.messages = new Map();
    state.messageNodes = new Map();
    state.historyNext = null;
    state.historyToken += 1;
    clear($("message-list"));
    $("conv").hidden = false;
    $("conv-empty").hidden = true;
    $("reply-error").textContent = "";
    $("typing").textContent = "";
    $("tab-chat").dataset.view = "conversation";
    if (!options.keepHash) history.replaceState(null, "", "#" + encodeURIComponent(state.org) + "/" + uuid);
    renderConvHeader();
    renderInbox();
    var load = loadHistory(true);
    markRead();
    if (!options.keepFocus) $("reply-text").focus();
    return load;
  }

  function closeDesk() {
    state.openDesk = null;
    state.historyToken += 1;
    state.historyLoading = false;
    $("message-list").removeAttribute("aria-busy");
    $("conv").hidden = true;
    $("conv-empty").hidden = false;
    $("tab-chat").dataset.view = "inbox";
    history.replaceState(null, "", "#" + encodeURIComponent(state.org));
    renderInbox();
  }

  $("conv-back").addEventListener("click", function () {
    var uuid = state.openDesk;
    closeDesk();
    var button = uuid && document.querySelector('#inbox-list button[data-desk="' + CSS.escape(uuid) + '"]');
    if (button) button.focus();
  });

  function markRead() {
    var uuid = state.openDesk;
    if (!uuid) return;
    api("POST", "/api/help-desks/" + uuid + "/read/").then(function (result) {
      upsertDesk(result.data, { rest: true });
      renderInbox();
    }).catch(function () {
      /* best effort: the count stays until the next open */
    });
  }

  // A message arriving in the open conversation while the agent looks at it is read.
  var readTimer = null;
  function maybeMarkRead() {
    var desk = state.desks.get(state.openDesk);
    if (!desk || !desk.unread_count || document.visibilityState === "hidden") return;
    if ($("tab-chat").hidden) return;
    clearTimeout(readTimer);
    readTimer = setTimeout(function () {
      if (!send({ type: "read", help_desk: state.openDesk })) markRead();
    }, 300);
  }
  document.addEventListener("visibilitychange", maybeMarkRead);

  function historyUrl(uuid) {
    return "/api/help-desks/" + uuid + "/history/?page_size=30";
  }

  function loadHistory(first) {
    var uuid = state.openDesk;
    var token = state.historyToken;
    if (!uuid || state.historyLoading && !first) return Promise.resolve();
    var url = first ? historyUrl(uuid) : state.historyNext;
    if (!url) return Promise.resolve();
    state.historyLoading = true;
    $("message-list").setAttribute("aria-busy", "true"); // a page of history is not news
    $("history-status").textContent = first ? "Loading messages…" : "Loading older messages…";
    var box = $("history");
    return api("GET", url)
      .then(function (result) {
        if (token !== state.historyToken) return;
        var before = box.scrollHeight - box.scrollTop;
        result.data.forEach(function (msg) {
          upsertMessage(msg, { fromHistory: true, rest: true });
        });
        state.historyNext = result.next;
        $("history-status").textContent = result.next ? "" : state.messages.size ? "Beginning of the conversation." : "No messages yet.";
        if (first) box.scrollTop = box.scrollHeight;
        else box.scrollTop = box.scrollHeight - before; // keep what the agent was reading in place
      })
      .catch(function (err) {
        if (token === state.historyToken) $("history-status").textContent = "Could not load messages: " + err.message;
      })
      .then(function () {
        if (token !== state.historyToken) return;
        state.historyLoading = false;
        $("message-list").removeAttribute("aria-busy");
        // Not enough to scroll yet? Fetch older pages until there is (or none is left).
        if (state.historyNext && box.clientHeight > 0 && box.scrollHeight <= box.clientHeight + 20) {
          loadHistory(false);
        }
      });
  }

  $("history").addEventListener("scroll", function () {
    if ($("history").scrollTop < 120 && state.historyNext && !state.historyLoading) loadHistory(false);
  });

  function messageOrder(a, b) {
    var ta = ts(a.created_at);
    var tb = ts(b.created_at);
    if (ta !== tb) return ta - tb;
    return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
  }

  var STATUS_LABEL = { sending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Failed" };

  function renderMessage(msg) {
    var outgoing = msg.type === "sent";
    var children = [];
    if (msg.message) children.push(el("p", { className: "msg-text", text: msg.message }));
    var href = safeUrl(msg.file);
    if (href) {
      // The URL is the download view (it names the message, not the file): show the
      // uploaded name; older events carried the name in the URL.
      var name = msg.file_name || href.split("/").pop() || "file";
      if (!msg.file_name) {
        try {
          name = decodeURIComponent(name);
        } catch (e) {
          /* not percent-encoded after all: show it as is */
        }
      }
      children.push(
        el("p", { className: "msg-file" }, [
          "Attachment: ",
          el("a", { href: href, target: "_blank", rel: "noopener", text: name }),
        ])
      );
    }
    var meta = [el("time", { datetime: msg.created_at, text: formatTime(msg.created_at) })];
    if (outgoing) {
      meta.push(el("span", { className: "msg-status", dataset: { status: msg.status }, text: STATUS_LABEL[msg.status] || msg.status }));
      if (msg.status === "failed") {
        meta.push(retryButton(msg));
      }
    }
    children.push(el("p", { className: "msg-meta" }, meta));
    // Who wrote it, for screen readers, read before the text (an aria-label on the <li>
    // would replace the message itself in its accessible name).
    children.unshift(el("span", { className: "visually-hidden msg-author", text: authorOf(msg, state.desks.get(msg.help_desk)) + ": " }));
    return el(
      "li",
      {
        className: "msg " + (outgoing ? "msg-out" : "msg-in"),
        dataset: { uuid: msg.uuid, status: msg.status },
      },
      children
    );
  }

  function retryButton(msg) {
    return el("button", {
      type: "button",
      className: "retry",
      text: "Retry",
      "aria-label": "Retry sending this message",
      onclick: function (event) {
        retryMessage(msg.uuid, event.currentTarget);
      },
    });
  }

  // A status change patches the shown item in place: replacing the <li> would make the
  // live log (aria-relevant="additions") read the whole message again.
  function patchMessage(node, msg, known) {
    if (known.message !== msg.message || known.file !== msg.file || known.type !== msg.type) return false;
    node.dataset.status = msg.status;
    var status = node.querySelector(".msg-status");
    if (status) {
      status.dataset.status = msg.status;
      status.textContent = STATUS_LABEL[msg.status] || msg.status;
    }
    var retry = node.querySelector(".retry");
    if (msg.status === "failed" && !retry && status) {
      status.parentNode.appendChild(retryButton(msg));
    } else if (msg.status !== "failed" && retry) {
      var hadFocus = retry === document.activeElement;
      retry.remove();
      if (hadFocus) $("reply-text").focus();
    }
    return true;
  }

  function upsertMessage(msg, options) {
    if (!msg || msg.help_desk !== state.openDesk) return;
    options = options || {};
    var known = state.messages.get(msg.uuid);
    // A history page or an API answer computed before a live update must not roll the
    // status back (e.g. the send answer `sending` arriving after the event `sent`).
    if (known && options.rest && ts(known.updated_at) > ts(msg.updated_at)) return;
    state.messages.set(msg.uuid, msg);
    var list = $("message-list");
    var old = state.messageNodes.get(msg.uuid);
    if (old && known && patchMessage(old, msg, known)) return;
    var node = renderMessage(msg);
    state.messageNodes.set(msg.uuid, node);
    if (old) {
      var hadFocus = old.contains(document.activeElement);
      list.replaceChild(node, old);
      if (hadFocus) {
        var focusable = node.querySelector("button") || $("reply-text");
        focusable.focus();
      }
      return;
    }
    if (!state.historyNext && !state.historyLoading) $("history-status").textContent = "Beginning of the conversation.";
    var box = $("history");
    var atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    // Insert in time order; live messages usually go last, older pages first.
    var after = null;
    for (var child = list.lastElementChild; child; child = child.previousElementSibling) {
      var other = state.messages.get(child.dataset.uuid);
      if (other && messageOrder(other, msg) <= 0) {
        after = child;
        break;
      }
    }
    if (after) list.insertBefore(node, after.nextSibling);
    else list.insertBefore(node, list.firstChild);
    if (!options.fromHistory && (atBottom || (msg.type === "sent" && options.own))) box.scrollTop = box.scrollHeight;
  }

  on("new_message", function (msg) {
    upsertMessage(msg);
  });
  on("update_message", function (msg) {
    upsertMessage(msg);
    var desk = state.desks.get(msg.help_desk);
    if (desk && desk.last_message && desk.last_message.uuid === msg.uuid) {
      desk.last_message = msg;
    }
  });

  function retryMessage(uuid, button) {
    button.disabled = true;
    api("POST", "/api/messages/" + uuid + "/retry/")
      .then(function (result) {
        upsertMessage(result.data, { rest: true });
      })
      .catch(function (err) {
        button.disabled = false;
        $("reply-error").textContent = "Retry failed: " + err.message;
      });
  }

  var typingTimer = null;
  function showTyping(frame) {
    var data = frame.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch (e) {
        return;
      }
    }
    if (!data || data.help_desk !== state.openDesk || data.agent === config.username) return;
    $("typing").textContent = (data.agent || "Someone") + " is typing…";
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () {
      $("typing").textContent = "";
    }, 4000);
  }

  // ----------------------------------------------------------------------- reply --

  var lastTypingSent = 0;
  $("reply-text").addEventListener("input", function () {
    var now = Date.now();
    if (state.openDesk && now - lastTypingSent > 3000) {
      lastTypingSent = now;
      send({ type: "typing", help_desk: state.openDesk });
    }
  });
  $("reply-text").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("reply-form").requestSubmit();
    }
  });

  // One send at a time: requestSubmit() (Enter) ignores the disabled button, so a second
  // Enter before the first answer would otherwise post the same text again.
  var replyInFlight = false;

  $("reply-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (replyInFlight) return;
    var text = $("reply-text").value;
    var fileInput = $("reply-file");
    var file = fileInput.files && fileInput.files[0];
    if (!text.trim() && !file) {
      $("reply-error").textContent = "Type a message or attach a file.";
      return;
    }
    var form = new FormData();
    form.append("help_desk", state.openDesk);
    form.append("message", text);
    if (file) form.append("file", file);
    var button = $("reply-send");
    replyInFlight = true;
    button.disabled = true;
    $("reply-text").setAttribute("aria-busy", "true");
    $("reply-error").textContent = "";
    api("POST", "/api/send-message/", form)
      .then(function (result) {
        $("reply-text").value = "";
        fileInput.value = "";
        if (result.data && result.data.uuid) {
          ownMessages.add(result.data.uuid);
          // the new_message event may have drawn it first, as "Agent": name it again
          var shown = state.messageNodes.get(result.data.uuid);
          var author = shown && shown.querySelector(".msg-author");
          if (author) author.textContent = senderName(result.data) + ": ";
          var desk = state.desks.get(result.data.help_desk);
          if (desk && desk.last_message && desk.last_message.uuid === result.data.uuid) renderInbox();
        }
        upsertMessage(result.data, { own: true, rest: true });
      })
      .catch(function (err) {
        $("reply-error").textContent = "Not sent: " + err.message;
      })
      .then(function () {
        replyInFlight = false;
        button.disabled = false;
        $("reply-text").removeAttribute("aria-busy");
        $("reply-text").focus();
      });
  });

  // ------------------------------------------------------------------------ tabs --

  function showTab(name) {
    document.querySelectorAll(".tab-button").forEach(function (button) {
      if (button.dataset.tab === name) button.setAttribute("aria-current", "page");
      else button.removeAttribute("aria-current");
    });
    document.querySelectorAll("main > .tab").forEach(function (section) {
      section.hidden = section.id !== "tab-" + name;
    });
    if (name === "chat") maybeMarkRead();
  }
  document.querySelectorAll(".tab-button").forEach(function (button) {
    button.addEventListener("click", function () {
      showTab(button.dataset.tab);
    });
  });

  // --------------------------------------------------------------- organizations --

  function selectOrg(slug, deskFromHash) {
    state.generation += 1;
    detachSocket();
    clearTimeout(state.reconnectTimer);
    state.org = slug;
    state.lastEventId = null;
    state.hadConnection = false;
    state.resyncPending = false;
    state.pending = [];
    state.desks = new Map();
    state.attempt = 0;
    state.fallbackLoaded = false;
    clearTimeout(state.helloTimer);
    try {
      localStorage.setItem("console.org", slug);
    } catch (e) {
      /* private mode */
    }
    closeDesk();
    if (deskFromHash) {
      // opened once the inbox has loaded (see the loader below)
      state.wantDesk = deskFromHash;
    }
    connect(); // its hello fixes the id the REST data is at least as new as...
    state.helloTimer = setTimeout(loadWithoutLive, HELLO_GRACE_MS); // ...but do not wait forever
  }

  loaders.push(function () {
    return loadInbox().then(function () {
      if (state.wantDesk) {
        var uuid = state.wantDesk;
        state.wantDesk = null;
        if (state.desks.has(uuid)) openDesk(uuid, { keepHash: true, keepFocus: true });
      } else if (state.openDesk) {
        // a resync: reload the open conversation too
        openDesk(state.openDesk, { keepHash: true, keepFocus: true });
      }
    });
  });

  function loadOrganizations() {
    return api("GET", "/api/organizations/").then(function (result) {
      state.orgs = result.data || [];
      var select = $("org-select");
      clear(select);
      if (!state.orgs.length) {
        select.appendChild(el("option", { text: "No organization" }));
        fatal("You do not belong to any organization yet. Ask an administrator to add you.");
        setConn("closed", "Not connected");
        return;
      }
      state.orgs.forEach(function (org) {
        select.appendChild(el("option", { value: org.slug, text: org.name + (org.role ? " (" + org.role + ")" : "") }));
      });
      select.disabled = state.orgs.length < 2;
      var hash = [];
      try {
        hash = decodeURIComponent(location.hash.slice(1)).split("/");
      } catch (e) {
        hash = []; // a malformed hash (e.g. "#%E0%A4%A"): ignore it
      }
      var stored = null;
      try {
        stored = localStorage.getItem("console.org");
      } catch (e) {
        /* private mode */
      }
      var slugs = state.orgs.map(function (org) {
        return org.slug;
      });
      var slug = slugs.indexOf(hash[0]) >= 0 ? hash[0] : slugs.indexOf(stored) >= 0 ? stored : slugs[0];
      select.value = slug;
      selectOrg(slug, slug === hash[0] ? hash[1] : null);
    });
  }

  $("org-select").addEventListener("change", function (event) {
    selectOrg(event.target.value, null);
  });

  // Panels (assistance, incidents, mailings) plug in through this small interface.
  window.ConsoleApp = {
    api: api,
    el: el,
    clear: clear,
    on: on,
    notify: notify,
    formatTime: formatTime,
    addLoader: function (fn) {
      loaders.push(fn);
    },
    org: function () {
      return state.org;
    },
    role: function () {
      var org = state.orgs.filter(function (o) {
        return o.slug === state.org;
      })[0];
      return org ? org.role : null;
    },
    username: config.username,
    teams: function () {
      return (config.teams || {})[state.org] || [];
    },
    showTab: showTab,
    // Open a help desk in the chat tab, fetching it first when the inbox has not got it.
    openHelpDesk: function (uuid) {
      showTab("chat");
      if (state.desks.has(uuid)) return Promise.resolve(openDesk(uuid));
      return api("GET", "/api/help-desks/" + uuid + "/").then(function (result) {
        upsertDesk(result.data, { rest: true });
        return openDesk(uuid);
      });
    },
  };

  // Test and debugging hooks (read-only views, plus a way to cut the socket).
  window.consoleDebug = {
    lastEventId: function () {
      return state.lastEventId;
    },
    appliedEventIds: function () {
      return state.applied.slice();
    },
    dropSocket: function () {
      if (state.ws) socketLost(1006);
    },
    connected: function () {
      return !!(state.ws && state.ws.readyState === WebSocket.OPEN && $("conn-status").dataset.state === "live");
    },
  };

  loadOrganizations().catch(function (err) {
    fatal("Could not load your organizations: " + err.message);
  });
})();
