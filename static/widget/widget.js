/*
 * The website chat widget (issue 14; docs/widget.md). One tag on any page:
 *   <script src="https://HOST/static/widget/widget.js" data-inbox="TOKEN" async></script>
 * Optional identity (signed on the site's server): data-user-id, data-user-hash.
 *
 * No build step, no dependency. Everything lives in a Shadow DOM (the host page's CSS
 * cannot reach in, ours cannot leak out) styled only by widget.css through a <link>:
 * no inline style, so a strict host CSP needs only our origin in style-src.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.inbox) return;
  var INBOX = script.dataset.inbox;
  var BASE = new URL(script.src).origin;
  var API = BASE + "/widget/api/" + encodeURIComponent(INBOX) + "/";
  var WS_URL = BASE.replace(/^http/, "ws") + "/ws/widget/" + encodeURIComponent(INBOX) + "/";
  var STORE = "cw-visitor:" + INBOX;
  var identity = { user_id: script.dataset.userId || "", user_hash: script.dataset.userHash || "" };

  // A token issued to a verified user is dropped once the page no longer names a user
  // (they logged out): the next person on this browser must not see their history.
  var stored = {};
  try { stored = JSON.parse(safeGet(STORE) || "{}") || {}; } catch (e) { stored = {}; }
  if (stored.verified && !identity.user_id) stored = {};
  var state = {
    token: stored.token || "", lastEventId: null, messages: {}, order: [], conversation: null,
    config: null, contact: {}, open: false, socket: null, retry: 0, started: null, typingAt: 0,
    seen: null, // the uuid of the visitor's last message an agent has read
    startSeq: 0, // the newest `start` sent: only its answer is applied
    unsaved: null, // a pre-chat contact sent, its answer not in yet (carried by any later start)
  };

  function safeGet(k) { try { return localStorage.getItem(k) || ""; } catch (e) { return ""; } }
  function safeSet(k, v) { try { if (v) localStorage.setItem(k, v); else localStorage.removeItem(k); } catch (e) { /* private mode */ } }

  // --- language -------------------------------------------------------------------------
  // The texts come in the visitor's language (the browser's when the platform speaks it,
  // else the inbox's default) from the widget's own API, as data: the customer's page gets
  // no gettext global of ours (docs/widget.md, "Languages"). Until then, or without, English.
  var strings = {};
  var language = "en";
  function t(s) { var v = strings[s]; return typeof v === "string" && v ? v : s; }
  function fmt(s, values) {
    return s.replace(/%\((\w+)\)s/g, function (_, k) { return values[k] === undefined || values[k] === null ? "" : String(values[k]); });
  }

  // --- DOM ------------------------------------------------------------------------------
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "class") node.className = attrs[k];
      else if (attrs[k] !== null && attrs[k] !== undefined) node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  var host = el("div", { "data-chat-widget": "" });
  var root = host.attachShadow({ mode: "open" });
  root.appendChild(el("link", { rel: "stylesheet", href: BASE + "/static/widget/widget.css" }));
  var launcher = el("button", { class: "launcher", type: "button", "aria-haspopup": "dialog",
    "aria-expanded": "false", part: "launcher" }, [el("span", { "aria-hidden": "true", text: "💬" })]);
  var title = el("h2", { id: "cw-title" });
  var status = el("p", { class: "status", id: "cw-status", text: "" });
  var closeBtn = el("button", { class: "close", type: "button" }, [el("span", { "aria-hidden": "true", text: "×" })]);
  var log = el("ol", { class: "log", role: "log", "aria-live": "polite" });
  var typing = el("p", { class: "typing", "aria-live": "polite", text: "" });
  var notice = el("p", { class: "notice", role: "status", text: "" });
  var prechat = el("form", { class: "prechat", hidden: "" });
  var rating = el("form", { class: "rating", hidden: "" });
  var text = el("textarea", { rows: "2", maxlength: "4000" });
  var file = el("input", { type: "file", class: "file" });
  var send = el("button", { type: "submit", class: "send" });
  var composer = el("form", { class: "composer" }, [text, el("div", { class: "row" }, [file, send])]);
  var panel = el("section", { class: "panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "cw-title", "aria-describedby": "cw-status", hidden: "" }, [
    el("header", {}, [el("div", {}, [title, status]), closeBtn]), log, typing, notice, prechat, rating, composer,
  ]);
  root.appendChild(launcher);
  root.appendChild(panel);

  // The fixed texts, once the strings are in (what is drawn later calls t() itself).
  function relabel() {
    host.setAttribute("lang", language);
    launcher.setAttribute("aria-label", t("Open chat"));
    title.textContent = t("Chat");
    closeBtn.setAttribute("aria-label", t("Close chat"));
    log.setAttribute("aria-label", t("Conversation"));
    rating.setAttribute("aria-label", t("Rate this conversation"));
    text.setAttribute("aria-label", t("Message"));
    text.setAttribute("placeholder", t("Write a message…"));
    file.setAttribute("aria-label", t("Attach a file"));
    send.textContent = t("Send");
  }

  // --- HTTP ---------------------------------------------------------------------------
  function call(path, body, isForm) {
    var headers = { "X-Visitor-Token": state.token || "" };
    if (!isForm) headers["Content-Type"] = "application/json";
    return fetch(API + path + "/", { method: "POST", headers: headers, body: isForm ? body : JSON.stringify(body || {}) })
      .then(function (r) {
        return (r.status === 204 ? Promise.resolve(null) : r.json()).then(function (j) {
          if (!r.ok) { var e = new Error((j && j.error && j.error.message) || r.statusText); e.status = r.status; e.body = j; throw e; }
          return j;
        });
      });
  }

  // Answers can arrive out of order (a resync's `start` while the pre-chat's is in flight):
  // an older one describes an older state (without the phone just entered), so only the
  // newest `start` sent is applied; an older one's caller gets the newest's answer. A later
  // start carries the contact not yet answered: the server may have read the visitor before
  // the pre-chat's request saved it.
  function start(contact) {
    var seq = ++state.startSeq;
    if (contact) state.unsaved = contact;
    var body = Object.assign({ token: state.token, page_url: location.href.slice(0, 2000),
      utc_offset: -new Date().getTimezoneOffset() }, state.unsaved || {});
    if (identity.user_id) { body.user_id = identity.user_id; body.user_hash = identity.user_hash; }
    state.started = call("start", body).then(function (j) {
      if (seq !== state.startSeq) return state.started;
      state.unsaved = null;
      state.token = j.visitor_token;
      safeSet(STORE, JSON.stringify({ token: j.visitor_token, verified: j.verified }));
      state.config = j.config; state.contact = j.contact; state.conversation = j.conversation;
      state.messages = {}; state.order = []; state.seen = j.seen || null;
      j.messages.forEach(upsert);
      if (state.lastEventId === null) state.lastEventId = j.last_event_id;
      renderAll(); connect();
      return j;
    }).catch(function (e) {
      if (seq !== state.startSeq) return state.started;
      if (e.status === 401 && state.token) { state.token = ""; safeSet(STORE, ""); return start(); }
      state.unsaved = null;
      say(e.message); throw e;
    });
    return state.started;
  }

  // --- socket: resume with last_event_id, reconnect with jittered backoff ---------------
  function connect() {
    if (state.socket) return;
    var ws = new WebSocket(WS_URL);
    state.socket = ws;
    ws.onopen = function () {
      var auth = { type: "auth", token: state.token };
      if (state.lastEventId !== null) auth.last_event_id = state.lastEventId;
      ws.send(JSON.stringify(auth));
    };
    ws.onmessage = function (ev) {
      var f = JSON.parse(ev.data);
      if (f.id) state.lastEventId = Math.max(state.lastEventId || 0, f.id);
      if (f.type === "hello") { state.retry = 0; state.lastEventId = f.last_event_id; }
      else if (f.type === "message") { upsert(f.data); renderAll(); if (f.data.from === "agent") markRead(); }
      else if (f.type === "conversation") { state.conversation = f.data; renderAll(); }
      else if (f.type === "typing") showTyping(f.data.agent);
      else if (f.type === "read") { state.seen = f.data.message; renderAll(); }
      else if (f.type === "resync_required") { state.lastEventId = null; start(); }
    };
    ws.onclose = function (ev) {
      state.socket = null;
      if (ev.code === 4403) { say(t("Chat is not available on this site.")); return; }
      if (ev.code === 4401) { state.token = ""; safeSet(STORE, ""); }
      var delay = Math.min(30000, 1000 * Math.pow(2, state.retry++)) * (0.5 + Math.random());
      setTimeout(function () { if (ev.code === 4401) start(); else connect(); }, delay);
    };
  }

  // --- rendering ------------------------------------------------------------------------
  function upsert(m) {
    if (!state.messages[m.uuid]) state.order.push(m.uuid);
    state.messages[m.uuid] = m;
  }

  function say(message) { notice.textContent = message || ""; }

  var typingTimer = null;
  function showTyping(agent) {
    typing.textContent = fmt(t("%(name)s is typing…"), { name: agent || t("Agent") });
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typing.textContent = ""; }, 4000);
  }

  function renderAll() {
    var cfg = state.config || {};
    title.textContent = cfg.name || t("Chat");
    status.textContent = cfg.online ? t("We're online") : (cfg.away_message || t("We're away: leave a message and we'll get back to you."));
    log.textContent = "";
    if (cfg.greeting) log.appendChild(el("li", { class: "msg agent greeting" }, [el("p", { text: cfg.greeting })]));
    state.order.forEach(function (uuid) {
      var m = state.messages[uuid];
      var parts = [];
      if (m.from === "agent" && m.agent) parts.push(el("span", { class: "who", text: m.agent }));
      if (m.text) parts.push(el("p", { text: m.text }));
      if (m.file) parts.push(el("a", { href: m.file, target: "_blank", rel: "noopener", class: "attachment", text: "📎 " + (m.file_name || t("file")) }));
      if (uuid === state.seen) parts.push(el("span", { class: "seen", text: t("Seen") }));
      log.appendChild(el("li", { class: "msg " + m.from, "data-uuid": uuid }, parts));
    });
    log.scrollTop = log.scrollHeight;
    renderPrechat(); renderRating();
  }

  function missingPrechat() {
    var need = (state.config && state.config.prechat) || {};
    return ["name", "email", "phone"].filter(function (f) {
      var have = f === "name" ? state.contact.name && state.contact.name !== "Website visitor" : state.contact[f];
      return need[f] && need[f] !== "off" && !have && (need[f] === "required" || !state.order.length);
    });
  }

  function renderPrechat() {
    var fields = missingPrechat();
    prechat.textContent = "";
    prechat.hidden = !fields.length;
    composer.hidden = !!fields.length && fields.some(function (f) { return state.config.prechat[f] === "required"; });
    if (!fields.length) return;
    prechat.appendChild(el("p", { text: t("Before we start, tell us how to reach you.") }));
    var names = { name: t("Name"), email: t("Email"), phone: t("Phone") };
    fields.forEach(function (f) {
      var id = "cw-pre-" + f;
      prechat.appendChild(el("label", { for: id, text: state.config.prechat[f] === "required" ? fmt(t("%(field)s (required)"), { field: names[f] }) : names[f] }));
      prechat.appendChild(el("input", { id: id, name: f, type: f === "email" ? "email" : (f === "phone" ? "tel" : "text"), required: state.config.prechat[f] === "required" ? "" : null }));
    });
    prechat.appendChild(el("button", { type: "submit", text: t("Start chat") }));
  }

  function renderRating() {
    var c = state.conversation;
    var done = c && (c.status === "resolved" || c.status === "closed") && !state.rated;
    rating.hidden = !done;
    if (!done || rating.childElementCount) return;
    var group = el("fieldset", {}, [el("legend", { text: t("How did we do?") })]);
    [1, 2, 3, 4, 5].forEach(function (n) {
      group.appendChild(el("label", {}, [el("input", { type: "radio", name: "score", value: String(n), "aria-label": fmt(t("%(n)s of 5"), { n: n }) }), el("span", { text: "★".repeat(n) })]));
    });
    rating.appendChild(group);
    rating.appendChild(el("textarea", { name: "comment", rows: "2", "aria-label": t("Comment (optional)"), maxlength: "2000" }));
    rating.appendChild(el("button", { type: "submit", text: t("Send rating") }));
  }

  // --- actions --------------------------------------------------------------------------
  function markRead() { if (state.open && state.socket && state.socket.readyState === 1) state.socket.send('{"type":"read"}'); }

  function setOpen(open) {
    state.open = open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) {
      (state.started || start()).then(function () { markRead(); (prechat.hidden ? text : prechat.querySelector("input") || text).focus(); });
    } else launcher.focus();
  }

  launcher.addEventListener("click", function () { setOpen(!state.open); });
  closeBtn.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") setOpen(false); });
  text.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); composer.requestSubmit(); }
  });
  text.addEventListener("input", function () {
    var now = Date.now();
    if (now - state.typingAt > 2000 && state.socket && state.socket.readyState === 1) {
      state.typingAt = now; state.socket.send('{"type":"typing"}');
    }
  });
  composer.addEventListener("submit", function (e) {
    e.preventDefault();
    var body = text.value.trim();
    var attached = file.files && file.files[0];
    if (!body && !attached) return;
    var request;
    if (attached) { var form = new FormData(); form.append("text", body); form.append("file", attached); request = call("messages", form, true); }
    else request = call("messages", { text: body });
    send.disabled = true;
    // A sent message ends the typing: the next keystroke is news again.
    request.then(function (m) { text.value = ""; file.value = ""; say(""); state.typingAt = 0; upsert(m); renderAll(); })
      .catch(function (err) { say(err.message); })
      .then(function () { send.disabled = false; text.focus(); });
  });
  prechat.addEventListener("submit", function (e) {
    e.preventDefault();
    var contact = {};
    Array.prototype.forEach.call(prechat.querySelectorAll("input"), function (i) { if (i.value) contact[i.name] = i.value; });
    start(contact).then(function () { text.focus(); });
  });
  rating.addEventListener("submit", function (e) {
    e.preventDefault();
    var chosen = rating.querySelector("input[name=score]:checked");
    if (!chosen) { say(t("Choose 1 to 5 stars.")); return; }
    call("rating", { score: Number(chosen.value), comment: rating.querySelector("textarea").value })
      .then(function () { state.rated = true; rating.hidden = true; say(t("Thank you!")); })
      .catch(function (err) { say(err.message); });
  });

  // For the site: `ChatWidget.reset()` at logout forgets this browser's visitor.
  window.ChatWidget = {
    reset: function () {
      safeSet(STORE, ""); state.token = ""; state.started = null; state.lastEventId = null;
      state.startSeq++; state.unsaved = null; // an answer in flight belongs to the one before
      state.messages = {}; state.order = []; state.seen = null; identity = { user_id: "", user_hash: "" };
      if (state.socket) { var ws = state.socket; ws.onclose = null; state.socket = null; ws.close(); }
      renderAll();
    },
  };

  // The launcher shows once the strings are in (no English first); then a returning
  // visitor (a token kept) resumes at once, to see replies that came while away.
  fetch(API + "strings/")
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (j) { if (j && j.strings) { strings = j.strings; language = j.language || language; } })
    .catch(function () { /* English it is */ })
    .then(function () {
      relabel();
      (document.body || document.documentElement).appendChild(host);
      if (state.token || identity.user_id) start();
    });
})();
