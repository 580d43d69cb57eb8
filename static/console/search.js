/* The search box above the inbox: GET /api/search/?q= (clients by name, phone, tag,
 * email; messages by text), results in place of the inbox until cleared. The API's
 * snippets are plain text; the page marks the words searched for itself, with <mark>
 * elements built by el() (never markup from the server). */
import { api, orgQuery } from "./api.js";
import { listen, state } from "./core.js";
import { $, clear, el, formatTime } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { clientName } from "./people.js";
import { openHelpDesk } from "./nav.js";

const search = { token: 0, timer: null };

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// The snippet as text nodes and <mark>s around each searched word.
export function highlight(text, query) {
  const words = query.split(/\s+/).filter((w) => w.length > 1).map(escapeRegExp);
  const node = el("span", { className: "snippet" });
  if (!words.length) {
    node.textContent = text;
    return node;
  }
  const pattern = new RegExp("(" + words.join("|") + ")", "gi");
  String(text || "").split(pattern).forEach((part, i) => {
    if (!part) return;
    node.appendChild(i % 2 ? el("mark", { text: part }) : document.createTextNode(part));
  });
  return node;
}

function showResults(show) {
  $("search-results").hidden = !show;
  $("inbox").classList.toggle("searching", show); // the list, views and filters step aside
}

function openClient(client) {
  // the client's newest conversation, from the page or from its context
  const known = Array.from(state.desks.values())
    .filter((d) => d.client && d.client.uuid === client.uuid)
    .sort((a, b) => (a.last_activity_at < b.last_activity_at ? 1 : -1))[0];
  if (known) return openHelpDesk(known.uuid);
  return api("GET", "/api/clients/" + client.uuid + "/context/")
    .then((result) => {
      const desks = (result.data && result.data.help_desks) || [];
      if (desks.length) return openHelpDesk(desks[0].uuid);
      $("search-status").textContent = t("This client has no conversation yet.");
    })
    .catch((err) => ($("search-status").textContent = err.message));
}

function render(data, query) {
  const box = $("search-body");
  clear(box);
  const clients = data.clients || [];
  const messages = data.messages || [];
  $("search-status").textContent = clients.length + messages.length
    ? fmt(t("%(clients)s client(s), %(messages)s message(s)"), { clients: clients.length, messages: messages.length })
    : t("Nothing found.");
  if (clients.length) {
    box.appendChild(el("h3", { text: t("Clients") }));
    box.appendChild(
      el("ul", { className: "search-list", id: "search-clients" }, clients.map((client) =>
        el("li", {}, [
          el("button", { type: "button", className: "desk", dataset: { client: client.uuid }, onclick: () => openClient(client) }, [
            el("span", { className: "desk-name" }, [highlight(clientName(client), query)]),
            el("span", { className: "desk-last" }, [highlight([client.phone, client.tag, client.email].filter(Boolean).join(" · "), query)]),
          ]),
        ])
      ))
    );
  }
  if (messages.length) {
    box.appendChild(el("h3", { text: t("Messages") }));
    box.appendChild(
      el("ul", { className: "search-list", id: "search-messages" }, messages.map((hit) =>
        el("li", {}, [
          el("button", { type: "button", className: "desk", dataset: { helpDesk: hit.help_desk }, onclick: () => openHelpDesk(hit.help_desk) }, [
            el("span", { className: "desk-top" }, [
              el("span", { className: "desk-name", text: clientName(hit.client) }),
              el("time", { className: "desk-time", text: formatTime(hit.message && hit.message.created_at) }),
            ]),
            el("span", { className: "desk-snippet" }, [highlight(hit.snippet || (hit.message && hit.message.message) || "", query)]),
          ]),
        ])
      ))
    );
  }
}

function run() {
  const query = $("search-q").value.trim();
  const token = (search.token += 1);
  if (!query) {
    showResults(false);
    return;
  }
  showResults(true);
  if (query.length < 2) {
    clear($("search-body"));
    $("search-status").textContent = t("Type at least 2 characters.");
    return;
  }
  $("search-status").textContent = t("Searching…");
  api("GET", "/api/search/?" + orgQuery(state.org) + "&q=" + encodeURIComponent(query.slice(0, 200)))
    .then((result) => {
      if (token === search.token) render(result.data || {}, query);
    })
    .catch((err) => {
      if (token !== search.token) return;
      clear($("search-body"));
      $("search-status").textContent = err.status === 404 ? t("Search is not available on this server yet.") : err.message;
    });
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  clearTimeout(search.timer);
  run();
});
$("search-q").addEventListener("input", () => {
  clearTimeout(search.timer);
  search.timer = setTimeout(run, 300);
});
$("search-q").addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    $("search-q").value = "";
    run();
  }
});
listen("org-changed", () => {
  $("search-q").value = "";
  showResults(false);
});
