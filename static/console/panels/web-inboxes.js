/* Website inboxes (issue 14; docs/widget.md): the organization's inboxes for the chat
 * widget with the snippet to paste in a site, and the satisfaction ratings (count,
 * average, per score). Organization admins create, edit and delete inboxes and rotate
 * the identity secret, which the API shows only in the answer to a create or a rotation:
 * it is shown here once, with a copy button, and never kept. Members read the same list
 * (the API gives them no secret and refuses their writes), without the buttons.
 *
 * The editor and the list are separate parts of the panel: a reload of the list (a
 * resync, the tab opened again) never wipes a form being filled in. */
import { api, orgQuery } from "../api.js";
import { addLoader, isAdmin, listen, state } from "../core.js";
import { $, clear, el, notify } from "../dom.js";
import { fmt, t, tn } from "../i18n.js";
import { unavailable } from "./common.js";
import { clearFieldErrors, inboxForm, languageName, showFieldErrors } from "./web-inbox-form.js";

const panel = { items: [], ratings: null, available: true, confirming: null, loaded: null };
// Where a site loads the widget from: this server's widget.js, beside the console's modules.
const WIDGET_SRC = new URL("../../widget/widget.js", import.meta.url).href;

function visible() {
  const tab = $("tab-web-inboxes");
  return !!tab && !tab.hidden;
}

function snippet(inbox) {
  return '<script src="' + WIDGET_SRC + '" data-inbox="' + inbox.token + '" async></script>';
}

function copy(text, input) {
  const done = () => notify(t("Copied."));
  const fallback = () => {
    input.focus();
    input.select();
    notify(t("Select the text and copy it (Ctrl+C)."));
  };
  if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, fallback);
  else fallback();
}

// A read-only text with a copy button (the snippet, the secret): selectable by keyboard.
function copyable(id, label, value) {
  const input = el("textarea", { id, readonly: true, rows: 3, className: "wi-copy-text", text: value, spellcheck: "false" });
  return el("div", { className: "field wi-copy" }, [
    el("label", { for: id, text: label }),
    input,
    el("button", { type: "button", text: t("Copy"), "aria-label": fmt(t("Copy: %(what)s"), { what: label }), onclick: () => copy(value, input) }),
  ]);
}

function ratingsSection() {
  const r = panel.ratings;
  const section = el("section", { className: "wi-ratings", "aria-labelledby": "wi-ratings-title" }, [
    el("h3", { id: "wi-ratings-title", text: t("Satisfaction ratings") }),
  ]);
  if (!r) return section;
  const summary = r.count
    ? fmt(tn("%(count)s rating, average %(average)s of 5", "%(count)s ratings, average %(average)s of 5", r.count), { count: r.count, average: r.average })
    : t("No ratings yet.");
  section.appendChild(el("p", { id: "wi-ratings-summary", text: summary }));
  if (!r.count) return section;
  const rows = [5, 4, 3, 2, 1].map((score) =>
    el("tr", { dataset: { score } }, [el("th", { scope: "row", text: fmt(t("%(n)s of 5"), { n: score }) }), el("td", { text: String(r.distribution[score] || 0) })])
  );
  section.appendChild(
    el("table", { className: "stats", id: "wi-ratings-table" }, [
      el("caption", { className: "visually-hidden", text: t("Ratings per score") }),
      el("thead", {}, [el("tr", {}, [el("th", { scope: "col", text: t("Score") }), el("th", { scope: "col", text: t("Ratings") })])]),
      el("tbody", {}, rows),
    ])
  );
  return section;
}

function confirmBox(inbox, action) {
  const text = action === "delete"
    ? fmt(t("Delete %(name)s? The widget stops working on every site that embeds it."), { name: inbox.name })
    : t("A new secret: every user hash signed with the old one stops working.");
  return el("div", { className: "wi-confirm", role: "group", "aria-label": t("Confirm") }, [
    el("p", { text }),
    el("button", { type: "button", className: "primary", text: action === "delete" ? t("Delete inbox") : t("Rotate secret"), onclick: (e) => act(inbox, action, e.currentTarget) }),
    el("button", { type: "button", text: t("Cancel"), onclick: () => confirmThen(null) }),
  ]);
}

function confirmThen(value) {
  panel.confirming = value;
  renderList();
}

function card(inbox) {
  const admin = isAdmin();
  const origins = inbox.allowed_origins.length ? inbox.allowed_origins.join(", ") : t("none yet: the widget works nowhere");
  const actions = admin
    ? el("div", { className: "actions" }, [
        el("button", { type: "button", text: t("Edit"), "aria-label": fmt(t("Edit %(name)s"), { name: inbox.name }), onclick: () => openEditor(inbox) }),
        el("button", { type: "button", text: t("New secret"), "aria-label": fmt(t("New secret for %(name)s"), { name: inbox.name }), onclick: () => confirmThen({ id: inbox.id, action: "rotate" }) }),
        el("button", { type: "button", text: t("Delete"), "aria-label": fmt(t("Delete %(name)s"), { name: inbox.name }), onclick: () => confirmThen({ id: inbox.id, action: "delete" }) }),
      ])
    : null;
  const confirming = panel.confirming && panel.confirming.id === inbox.id ? confirmBox(inbox, panel.confirming.action) : null;
  return el("li", { className: "card wi-card", dataset: { id: inbox.id } }, [
    el("h3", { text: inbox.name }),
    el("p", { className: "muted" }, [fmt(t("Allowed origins: %(origins)s"), { origins })]),
    el("p", { className: "muted" }, [fmt(t("Language: %(language)s · time zone: %(zone)s"), { language: languageName(inbox.language || "en"), zone: inbox.timezone })]),
    copyable("wi-snippet-" + inbox.id, fmt(t("Snippet for %(name)s"), { name: inbox.name }), snippet(inbox)),
    actions,
    confirming,
  ]);
}

function renderList() {
  const list = $("wi-list");
  if (!list) return;
  clear(list);
  if (!panel.items.length) list.appendChild(el("li", { className: "muted", text: t("No website inboxes yet.") }));
  for (const inbox of panel.items) list.appendChild(card(inbox));
  const focus = panel.confirming && list.querySelector(".wi-confirm button");
  if (focus) focus.focus();
}

function render() {
  const body = $("web-inboxes-body");
  if (!panel.available) return unavailable(body, t("Website inboxes"));
  if (panel.loaded !== state.org || !$("wi-list")) {
    clear(body);
    panel.loaded = state.org;
    body.appendChild(el("div", { id: "wi-secret" }));
    if (isAdmin()) body.appendChild(el("p", {}, [el("button", { type: "button", id: "wi-new", className: "primary", text: t("New website inbox"), onclick: () => openEditor(null) })]));
    else body.appendChild(el("p", { className: "muted", text: t("Organization admins add and change website inboxes.") }));
    body.appendChild(el("div", { id: "wi-editor" }));
    body.appendChild(el("ul", { className: "cards", id: "wi-list" }));
    body.appendChild(el("div", { id: "wi-ratings" }));
  }
  renderList();
  const ratings = $("wi-ratings");
  clear(ratings);
  ratings.appendChild(ratingsSection());
}

function load() {
  const org = state.org;
  if (!org) return Promise.resolve();
  return Promise.all([
    api("GET", "/api/web-inboxes/?" + orgQuery(org) + "&page_size=100"),
    api("GET", "/api/web-inboxes/ratings/?" + orgQuery(org)),
  ])
    .then(([list, ratings]) => {
      if (org !== state.org) return;
      panel.available = true;
      panel.items = list.data || [];
      panel.ratings = ratings.data;
      render();
    })
    .catch((err) => {
      if (err.status !== 404) throw err;
      panel.available = false;
      render();
    });
}

// The secret, once (the answer to a create or a rotation); gone with "Done" or a reload.
function showSecret(inbox) {
  const box = $("wi-secret");
  clear(box);
  box.appendChild(
    el("section", { className: "card wi-secret", "aria-labelledby": "wi-secret-title" }, [
      el("h3", { id: "wi-secret-title", text: fmt(t("Identity secret of %(name)s"), { name: inbox.name }) }),
      el("p", { text: t("Shown only now: copy it to your server, which signs user ids with it. It is not shown again.") }),
      copyable("wi-secret-value", t("Secret"), inbox.secret),
      el("button", { type: "button", text: t("Done"), onclick: () => clear(box) }),
    ])
  );
  $("wi-secret-value").focus();
}

function closeEditor() {
  const editor = $("wi-editor");
  if (editor) clear(editor);
}

function openEditor(inbox) {
  const editor = $("wi-editor");
  clear(editor);
  const form = inboxForm(inbox, (body) => save(inbox, body, form), () => {
    closeEditor();
    const back = inbox ? document.querySelector('.wi-card[data-id="' + inbox.id + '"] button') : $("wi-new");
    if (back) back.focus();
  });
  editor.appendChild(form);
  $("wi-name").focus();
}

function save(inbox, body, form) {
  clearFieldErrors(form);
  const button = $("wi-save");
  button.disabled = true;
  const request = inbox
    ? api("PATCH", "/api/web-inboxes/" + inbox.id + "/", body)
    : api("POST", "/api/web-inboxes/", Object.assign({ organization: state.org }, body));
  request
    .then((result) => {
      closeEditor();
      notify(inbox ? fmt(t("Saved: %(name)s"), { name: result.data.name }) : fmt(t("Created: %(name)s"), { name: result.data.name }));
      return load().then(() => {
        if (result.data.secret) showSecret(result.data);
      });
    })
    .catch((err) => {
      if (!form.isConnected) return;
      button.disabled = false;
      const shown = showFieldErrors(err.fields);
      $("wi-form-error").textContent = shown ? t("Please correct the fields above.") : err.message;
      const invalid = form.querySelector("[aria-invalid]");
      if (invalid) invalid.focus();
    });
}

function act(inbox, action, button) {
  button.disabled = true;
  const request = action === "delete"
    ? api("DELETE", "/api/web-inboxes/" + inbox.id + "/")
    : api("POST", "/api/web-inboxes/" + inbox.id + "/rotate/", { secret: true });
  request
    .then((result) => {
      panel.confirming = null;
      if (action === "delete") notify(fmt(t("Deleted: %(name)s"), { name: inbox.name }));
      return load().then(() => {
        if (action === "rotate") showSecret(result.data);
      });
    })
    .catch((err) => {
      button.disabled = false;
      notify(err.message, "error");
    });
}

addLoader(() => (visible() ? load() : Promise.resolve()));
listen("tab", (name) => {
  if (name === "web-inboxes" && state.org) load();
});
listen("org-changed", () => {
  panel.confirming = null;
  panel.loaded = null; // the next render starts over: no form or secret of the other org
});
