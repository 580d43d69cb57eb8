/* The agent console (issue #5, #13): plain JavaScript modules on the REST API and the
 * websocket hub, no build step. This module starts the page: the organizations, the deep
 * link (`#<org>/<help desk uuid>`, kept through the login by deeplink.js), and the test
 * hooks. Each concern is its own module (docs/console.md, "Files"). */
import { api } from "./api.js";
import { addLoader, config, emit, state } from "./core.js";
import { $, clear, el, fatal, formatTime, notify } from "./dom.js";
import { t } from "./i18n.js";
import "./people.js";
import { inboxDebug, loadInbox, resetInbox } from "./inbox.js";
import { closeDesk, conversationDebug } from "./conversation.js";
import "./canned.js"; // before the composer: its keys come first in the reply box
import "./composer.js";
import "./workflow.js";
import "./context.js";
import "./search.js";
import { attentionDebug, loadPreferences } from "./attention.js";
import { openHelpDesk, showTab } from "./nav.js";
import { debugHooks, setConn, startStream } from "./realtime.js";
import "./panels/assistance.js";
import "./panels/events.js";
import "./panels/incidents.js";
import "./panels/mailings.js";
import "./panels/web-inboxes.js";

// A deep link the login page kept (the fragment never reaches the server).
function takeDeepLink() {
  let hash = location.hash.slice(1);
  try {
    const kept = sessionStorage.getItem("console.deepLink");
    sessionStorage.removeItem("console.deepLink");
    if (!hash && kept) {
      hash = kept.replace(/^#/, "");
      history.replaceState(null, "", "#" + hash);
    }
  } catch (e) {
    /* private mode */
  }
  try {
    return decodeURIComponent(hash).split("/"); // "#<org slug>/<help desk uuid>"
  } catch (e) {
    return []; // a malformed hash (e.g. "#%E0%A4%A"): ignore it
  }
}

function selectOrg(slug, deskFromHash) {
  state.org = slug;
  state.desks = new Map();
  try {
    localStorage.setItem("console.org", slug);
  } catch (e) {
    /* private mode */
  }
  closeDesk();
  resetInbox();
  emit("org-changed", slug);
  state.wantDesk = deskFromHash || null; // opened once the inbox has loaded (below)
  startStream();
}

// The inbox first, then the conversation the URL names (or the open one, after a resync).
addLoader(() =>
  loadInbox().then(() => {
    emit("inbox-loaded");
    if (state.wantDesk) {
      const uuid = state.wantDesk;
      state.wantDesk = null;
      return openHelpDesk(uuid, { keepFocus: true }).catch(() => {
        notify(t("That conversation could not be opened."));
      });
    }
    if (state.openDesk && state.desks.has(state.openDesk)) {
      return openHelpDesk(state.openDesk, { keepHash: true, keepFocus: true });
    }
  })
);

function loadOrganizations() {
  return api("GET", "/api/organizations/").then((result) => {
    state.orgs = result.data || [];
    const select = $("org-select");
    clear(select);
    if (!state.orgs.length) {
      select.appendChild(el("option", { text: t("No organization") }));
      fatal(t("You do not belong to any organization yet. Ask an administrator to add you."));
      setConn("closed", t("Not connected"));
      return;
    }
    for (const org of state.orgs) select.appendChild(el("option", { value: org.slug, text: org.name + (org.role ? " (" + org.role + ")" : "") }));
    select.disabled = state.orgs.length < 2;
    const hash = takeDeepLink();
    let stored = null;
    try {
      stored = localStorage.getItem("console.org");
    } catch (e) {
      /* private mode */
    }
    const slugs = state.orgs.map((org) => org.slug);
    const slug = slugs.includes(hash[0]) ? hash[0] : slugs.includes(stored) ? stored : slugs[0];
    select.value = slug;
    selectOrg(slug, slug === hash[0] ? hash[1] : null);
  });
}

$("org-select").addEventListener("change", (event) => selectOrg(event.target.value, null));

// A deep link followed while the console is open (a link in a note, a notification):
// only the fragment changes, so the page is not loaded again.
window.addEventListener("hashchange", () => {
  let parts;
  try {
    parts = decodeURIComponent(location.hash.slice(1)).split("/");
  } catch (e) {
    return;
  }
  const [slug, uuid] = parts;
  if (!state.orgs.some((org) => org.slug === slug)) return;
  if (slug !== state.org) {
    $("org-select").value = slug;
    selectOrg(slug, uuid || null);
  } else if (uuid && uuid !== state.openDesk) {
    openHelpDesk(uuid, { keepHash: true }).catch(() => notify(t("That conversation could not be opened.")));
  }
});

// The older plug-in interface (panels used it before the modules); kept small.
window.ConsoleApp = {
  api,
  el,
  clear,
  notify,
  formatTime,
  org: () => state.org,
  username: config.username,
  showTab,
  openHelpDesk,
};

// Test and debugging hooks (read-only views, plus a way to cut the socket).
window.consoleDebug = {
  lastEventId: debugHooks.lastEventId,
  appliedEventIds: () => state.applied.slice(),
  eventTimings: () => state.timings.slice(),
  dropSocket: debugHooks.dropSocket,
  connected: debugHooks.connected,
  inbox: inboxDebug,
  conversation: conversationDebug,
  alerts: attentionDebug.alerts,
  preferences: attentionDebug.preferences,
};

loadPreferences();
loadOrganizations().catch((err) => fatal(t("Could not load your organizations: ") + err.message));
