/* The customer context beside the conversation: the client's details (editable: name,
 * tag, time zone, email, language, opt-outs), previous conversations, mailings they
 * received, open incidents' warnings, and — for a web widget visitor — the page, browser
 * and local time (GET /api/help-desks/<uuid>/visitor/, when the server has it). */
import { api } from "./api.js";
import { emit, listen, state } from "./core.js";
import { $, clear, el, formatTime } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { STATUS_LABEL, normalStatus, upsertDesk } from "./inbox.js";
import { clientName } from "./people.js";
import { openHelpDesk } from "./nav.js";

const ctx = { token: 0, client: null };
const FIELDS = [
  ["name", t("Name"), "text"],
  ["tag", t("Tag"), "text"],
  ["timezone", t("Time zone"), "text"],
  ["email", t("Email"), "email"],
  ["language", t("Language"), "text"],
];
const FLAGS = [
  ["promo_opt_out", t("No promotional SMS")],
  ["email_promo_opt_out", t("No promotional email")],
];

function section(title, children) {
  return el("section", { className: "ctx-section" }, [el("h3", { text: title })].concat(children));
}

function detailsForm(client) {
  const children = [];
  for (const [name, label, type] of FIELDS) {
    if (!(name in client) && name !== "name") continue; // a field this server does not have
    children.push(
      el("div", { className: "field" }, [
        el("label", { for: "ctx-" + name, text: label }),
        el("input", { id: "ctx-" + name, name, type, value: client[name] || "", autocomplete: "off" }),
        el("span", { className: "form-error field-error", id: "ctx-" + name + "-error" }),
      ])
    );
  }
  for (const [name, label] of FLAGS) {
    if (!(name in client)) continue;
    children.push(el("p", { className: "check" }, [el("label", {}, [el("input", { type: "checkbox", name, id: "ctx-" + name, checked: client[name] ? true : null }), " " + label])]));
  }
  children.push(el("button", { type: "submit", className: "primary", text: t("Save details") }));
  children.push(el("p", { className: "form-error", id: "ctx-error", role: "alert" }));
  const form = el("form", { id: "ctx-form", className: "ctx-form", novalidate: true }, children);
  form.addEventListener("submit", (event) => saveDetails(event, client));
  return form;
}

function saveDetails(event, client) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = {};
  for (const [name] of FIELDS) if (form.elements[name]) body[name] = form.elements[name].value;
  for (const [name] of FLAGS) if (form.elements[name]) body[name] = form.elements[name].checked;
  form.querySelectorAll(".form-error").forEach((node) => (node.textContent = ""));
  api("PATCH", "/api/clients/" + client.uuid + "/", body)
    .then((result) => {
      ctx.client = result.data;
      $("context-title").textContent = clientName(result.data);
      // the inbox and header show the new name at once (the event follows)
      for (const desk of state.desks.values()) {
        if (desk.client && desk.client.uuid === result.data.uuid) upsertDesk(Object.assign({}, desk, { client: result.data }));
      }
      emit("open-desk-changed", state.desks.get(state.openDesk));
      $("ctx-error").textContent = "";
      $("ctx-saved").textContent = t("Saved.");
      setTimeout(() => ($("ctx-saved").textContent = ""), 3000);
    })
    .catch((err) => {
      let shown = false;
      for (const name of Object.keys(err.fields || {})) {
        const node = $("ctx-" + name + "-error");
        if (node) {
          node.textContent = [].concat(err.fields[name]).join(" ");
          shown = true;
        }
      }
      $("ctx-error").textContent = shown ? t("Please correct the fields above.") : err.message;
    });
}

// "Firefox on Windows" from a User-Agent: enough to picture the visitor's screen.
export function browserName(agent) {
  if (!agent) return "—";
  const browser = /Edg\//.test(agent) ? "Edge" : /OPR\//.test(agent) ? "Opera" : /Firefox\//.test(agent) ? "Firefox"
    : /Chrome\//.test(agent) ? "Chrome" : /Safari\//.test(agent) ? "Safari" : null;
  const os = /Android/.test(agent) ? "Android" : /iPhone|iPad/.test(agent) ? "iOS" : /Windows/.test(agent) ? "Windows"
    : /Mac OS X/.test(agent) ? "macOS" : /Linux/.test(agent) ? "Linux" : null;
  if (!browser) return agent.slice(0, 80);
  return os ? fmt(t("%(browser)s on %(os)s"), { browser, os }) : browser;
}

// The visitor's clock: `utc_offset` is minutes east of UTC (the widget sends
// -getTimezoneOffset()).
function localTime(offset) {
  if (typeof offset !== "number") return "—";
  const shifted = new Date(Date.now() + offset * 60000);
  const time = shifted.toLocaleTimeString(document.documentElement.lang || undefined, { hour: "2-digit", minute: "2-digit", timeZone: "UTC" });
  const sign = offset < 0 ? "−" : "+";
  const abs = Math.abs(offset);
  return time + " (UTC" + sign + Math.floor(abs / 60) + (abs % 60 ? ":" + String(abs % 60).padStart(2, "0") : "") + ")";
}

function listOf(items, empty, render) {
  if (!items || !items.length) return [el("p", { className: "muted", text: empty })];
  return [el("ul", { className: "ctx-list" }, items.map((item) => el("li", {}, render(item))))];
}

function render(data, visitor) {
  const body = $("context-body");
  clear(body);
  const client = data.client || {};
  body.appendChild(el("h2", { id: "context-title", text: clientName(client) }));
  body.appendChild(el("p", { className: "muted ctx-phone", text: [client.phone, client.email, client.channel].filter(Boolean).join(" · ") }));
  body.appendChild(el("p", { id: "ctx-saved", className: "ok", role: "status" }));
  if (visitor) {
    body.appendChild(
      section(t("Web visitor"), [
        el("dl", { className: "ctx-visitor" }, [
          el("dt", { text: t("Page") }),
          el("dd", { className: "visitor-page", text: visitor.page_url || "—" }),
          el("dt", { text: t("Browser") }),
          el("dd", { className: "visitor-browser", title: visitor.user_agent || null, text: browserName(visitor.user_agent) }),
          el("dt", { text: t("Local time") }),
          el("dd", { className: "visitor-time", text: localTime(visitor.utc_offset) }),
        ]),
      ])
    );
  }
  body.appendChild(section(t("Details"), [detailsForm(client)]));
  if (data.help_desks) {
    const others = data.help_desks.filter((d) => d.uuid !== state.openDesk);
    body.appendChild(
      section(t("Previous conversations"), listOf(others, t("None."), (desk) => [
        el("button", { type: "button", className: "link", text: formatTime(desk.last_activity_at || desk.created_at) + " · " + (STATUS_LABEL[normalStatus(desk.status)] || desk.status), onclick: () => openHelpDesk(desk.uuid) }),
        desk.last_message_text ? el("span", { className: "muted ctx-snippet", text: desk.last_message_text }) : null,
      ]))
    );
  }
  if (data.mailings) {
    body.appendChild(
      section(t("Mailings received"), listOf(data.mailings, t("None."), (m) => [
        el("span", { text: m.name || fmt(t("Mailing #%(id)s"), { id: m.id }) }),
        el("span", { className: "muted", text: " · " + [m.message_status || m.status, formatTime(m.sent_at)].filter(Boolean).join(" · ") }),
      ]))
    );
  }
  if (data.incidents) {
    body.appendChild(
      section(t("Open incidents"), listOf(data.incidents, t("None."), (i) => [
        el("span", { text: i.rule_name || i.name || i.rule || t("Incident") }),
        el("span", { className: "muted", text: " · " + [i.status, formatTime(i.started_at || i.opened_at)].filter(Boolean).join(" · ") }),
      ]))
    );
  }
}

function load() {
  const desk = state.desks.get(state.openDesk);
  if (!desk || !desk.client) return;
  const token = (ctx.token += 1);
  const client = desk.client;
  ctx.client = client;
  render({ client }, null); // what the inbox knows, at once
  Promise.all([
    client.uuid ? api("GET", "/api/clients/" + client.uuid + "/context/").catch(() => null) : null,
    // only a web widget's visitor has one (asking for others would log a 404 each time)
    (desk.channel || client.channel) === "web" ? api("GET", "/api/help-desks/" + desk.uuid + "/visitor/").catch(() => null) : null,
  ]).then(([context, visitor]) => {
    if (token !== ctx.token) return;
    render(context ? context.data : { client }, visitor ? visitor.data : null);
  });
}

function showDetails(open) {
  $("tab-chat").dataset.details = open ? "open" : "closed";
  $("details-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("context").focus();
  else $("details-toggle").focus();
}
$("details-toggle").addEventListener("click", () => showDetails($("tab-chat").dataset.details !== "open"));
$("details-close").addEventListener("click", () => showDetails(false));

listen("desk-opened", load);
listen("desk-closed", () => {
  $("tab-chat").dataset.details = "closed";
  ctx.token += 1;
  clear($("context-body"));
});
