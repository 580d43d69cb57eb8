/* Canned replies: a `/shortcut` picker in the reply box (a combobox: arrows move, Enter
 * or Tab inserts, Escape closes) and a small dialog to manage them (organization admins
 * write, agents read). Variables {{ name }}, {{ phone }}, {{ email }}, {{ tag }} are
 * filled from the open conversation's client as plain text (never markup). */
import { api, orgQuery } from "./api.js";
import { addLoader, isAdmin, state } from "./core.js";
import { $, clear, el } from "./dom.js";
import { fmt, t } from "./i18n.js";

const canned = { items: [], available: false, matches: [], active: -1, start: -1 };
const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,49})\s*\}\}/g;
const CLIENT_VARIABLES = ["name", "phone", "email", "tag"];

export function fillVariables(text, client) {
  return String(text || "").replace(VARIABLE, (whole, name) => {
    if (!CLIENT_VARIABLES.includes(name)) return whole; // not ours to fill: left for the agent to see
    const value = client && client[name];
    return value === null || value === undefined ? "" : String(value);
  });
}

function load() {
  const org = state.org;
  return api("GET", "/api/canned-replies/?" + orgQuery(org) + "&page_size=200")
    .then((result) => {
      if (org !== state.org) return;
      canned.items = result.data || [];
      canned.available = true;
      $("canned-open").hidden = false;
      renderManager();
    })
    .catch((err) => {
      if (err.status !== 404) throw err;
      canned.available = false; // not on this server: no picker, no button
      canned.items = [];
      $("canned-open").hidden = true;
    });
}
addLoader(load);

// ------------------------------------------------------------------- picker --

const box = $("reply-text");
const list = $("canned-list");

// The `/word` just before the caret, at the start of the text or of a line/word.
function token() {
  const upto = box.value.slice(0, box.selectionStart);
  const match = /(^|\s)\/([\w-]{0,50})$/.exec(upto);
  return match ? { start: upto.length - match[2].length - 1, query: match[2].toLowerCase() } : null;
}

function closePicker() {
  list.hidden = true;
  canned.matches = [];
  canned.active = -1;
  box.setAttribute("aria-expanded", "false");
  box.removeAttribute("aria-activedescendant");
}

function renderPicker() {
  clear(list);
  canned.matches.forEach((item, i) => {
    list.appendChild(
      el("li", {
        id: "canned-option-" + i,
        role: "option",
        "aria-selected": String(i === canned.active),
        className: "canned-option",
        onmousedown: (event) => {
          event.preventDefault(); // keep the focus in the box
          insert(i);
        },
      }, [el("strong", { text: "/" + item.shortcut }), " ", el("span", { className: "muted", text: item.title || "" })])
    );
  });
  list.hidden = canned.matches.length === 0;
  box.setAttribute("aria-expanded", String(!list.hidden));
  if (canned.active >= 0) box.setAttribute("aria-activedescendant", "canned-option-" + canned.active);
  else box.removeAttribute("aria-activedescendant");
}

function update() {
  const found = canned.available && $("reply-form").classList.contains("note-mode") === false ? token() : null;
  if (!found) return closePicker();
  canned.start = found.start;
  canned.matches = canned.items
    .filter((item) => item.shortcut.toLowerCase().startsWith(found.query) || (item.title || "").toLowerCase().includes(found.query))
    .slice(0, 8);
  canned.active = canned.matches.length ? 0 : -1;
  renderPicker();
}

function insert(index) {
  const item = canned.matches[index];
  if (!item) return;
  const desk = state.desks.get(state.openDesk);
  const text = fillVariables(item.text, desk && desk.client);
  const end = box.selectionStart;
  box.value = box.value.slice(0, canned.start) + text + box.value.slice(end);
  const caret = canned.start + text.length;
  box.setSelectionRange(caret, caret);
  closePicker();
  box.focus();
}

box.setAttribute("role", "combobox");
box.setAttribute("aria-autocomplete", "list");
box.setAttribute("aria-controls", "canned-list");
box.setAttribute("aria-expanded", "false");
box.addEventListener("input", update);
box.addEventListener("blur", () => setTimeout(closePicker, 150));
// Registered before the composer's Enter handler (this module loads first): a key the
// picker uses is marked handled (preventDefault) so Enter inserts instead of sending.
box.addEventListener("keydown", (event) => {
  if (list.hidden || !canned.matches.length) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    const n = canned.matches.length;
    canned.active = (canned.active + (event.key === "ArrowDown" ? 1 : n - 1)) % n;
    renderPicker();
  } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
    event.preventDefault();
    insert(canned.active);
  } else if (event.key === "Escape") {
    event.preventDefault();
    closePicker();
  }
});

// ------------------------------------------------------------------ manager --

const dialog = $("canned-dialog");

function renderManager() {
  const body = $("canned-body");
  clear(body);
  const admin = isAdmin();
  if (!canned.items.length) body.appendChild(el("p", { className: "muted", text: t("No canned replies yet.") }));
  const rows = el("ul", { className: "cards", id: "canned-manage-list" });
  for (const item of canned.items) {
    rows.appendChild(
      el("li", { className: "card", dataset: { id: String(item.id), shortcut: item.shortcut } }, [
        el("h3", {}, [el("code", { text: "/" + item.shortcut }), " ", el("span", { text: item.title || "" })]),
        el("p", { className: "canned-text", text: item.text }),
        admin
          ? el("div", { className: "actions" }, [
              el("button", { type: "button", text: t("Edit"), "aria-label": fmt(t("Edit /%(shortcut)s"), { shortcut: item.shortcut }), onclick: () => edit(item) }),
              el("button", { type: "button", text: t("Delete"), "aria-label": fmt(t("Delete /%(shortcut)s"), { shortcut: item.shortcut }), onclick: () => remove(item) }),
            ])
          : null,
      ])
    );
  }
  body.appendChild(rows);
  $("canned-form").hidden = !admin;
  $("canned-readonly").hidden = admin;
}

function edit(item) {
  $("canned-form").dataset.id = String(item.id);
  $("canned-shortcut").value = item.shortcut;
  $("canned-title-input").value = item.title || "";
  $("canned-text").value = item.text;
  $("canned-save").textContent = t("Save changes");
  $("canned-shortcut").focus();
}

function resetForm() {
  delete $("canned-form").dataset.id;
  $("canned-form").reset();
  $("canned-save").textContent = t("Add canned reply");
  document.querySelectorAll("#canned-form .field-error").forEach((node) => (node.textContent = ""));
  $("canned-error").textContent = "";
}

function remove(item) {
  api("DELETE", "/api/canned-replies/" + item.id + "/")
    .then(load)
    .catch((err) => ($("canned-error").textContent = err.message));
}

$("canned-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("canned-form").dataset.id;
  const body = { shortcut: $("canned-shortcut").value.trim(), title: $("canned-title-input").value, text: $("canned-text").value };
  if (!id) body.organization = state.org;
  document.querySelectorAll("#canned-form .field-error").forEach((node) => (node.textContent = ""));
  $("canned-error").textContent = "";
  api(id ? "PATCH" : "POST", id ? "/api/canned-replies/" + id + "/" : "/api/canned-replies/", body)
    .then(() => {
      resetForm();
      return load();
    })
    .catch((err) => {
      let shown = false;
      for (const name of Object.keys(err.fields || {})) {
        const node = $("canned-" + name + "-error");
        if (node) {
          node.textContent = [].concat(err.fields[name]).join(" ");
          shown = true;
        }
      }
      $("canned-error").textContent = shown ? t("Please correct the fields above.") : err.message;
    });
});

$("canned-open").addEventListener("click", () => {
  resetForm();
  renderManager();
  dialog.showModal();
  load();
});
$("canned-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", () => $("canned-open").focus());
