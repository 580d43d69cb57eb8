/* Events (issue 15 item 5): what external services posted (GET /api/events/), live from
 * the `event_received` frames (processed, or a duplicate of an idempotency key), each
 * with what it scheduled and cancelled and how often its key was posted again
 * (`duplicates`, `last_duplicate_at`: counted on the event); and the organization's event rules
 * (GET /api/event-rules/), which admins create (POST), change (PATCH) and delete
 * (DELETE) here, the API's field errors beside their fields. */
import { api, orgQuery } from "../api.js";
import { addLoader, isAdmin, on, state } from "../core.js";
import { $, clear, el, formatDateTime, notify } from "../dom.js";
import { fmt, t, tn } from "../i18n.js";
import { unavailable } from "./common.js";

const panel = { events: [], rules: [], templates: [], available: true, editing: null, confirming: null };
const STATUS_TEXT = { processed: t("processed"), duplicate: t("duplicate") };
const MAILING_STATUS = { scheduled: t("scheduled"), running: t("running"), finished: t("finished"), cancelled: t("cancelled") };
const TRANSPORTS = [["", t("the template's transport")], ["email,sms", t("email, else SMS")], ["sms,email", t("SMS, else email")], ["email", t("email only")], ["sms", t("SMS only")]];
const FIELDS = ["event", "template", "transports", "delay_seconds", "priority", "promo", "cancel_events", "active"];

function templateName(id) {
  const found = panel.templates.find((tpl) => tpl.id === id);
  return found ? found.title : fmt(t("Template #%(id)s"), { id });
}

function scheduled(event) {
  if (!(event.mailings || []).length) return t("nothing");
  return event.mailings
    .map((m) => fmt(t("#%(id)s %(status)s at %(time)s"), { id: m.id, status: MAILING_STATUS[m.status] || m.status, time: formatDateTime(m.start_at) }))
    .join("; ");
}

// On the event's own row (not a live duplicate's): how often its key came again.
function repeats(event, status) {
  if (status === "duplicate" || !event.duplicates) return [];
  const text = fmt(tn("repeated %(count)s time, last %(time)s", "repeated %(count)s times, last %(time)s", event.duplicates), { count: event.duplicates, time: formatDateTime(event.last_duplicate_at) });
  return [el("br"), el("span", { className: "muted event-repeats", text })];
}

function eventRow(event) {
  const status = event.status || "processed";
  const cancelled = (event.cancelled || []).length ? fmt(t("cancelled %(ids)s"), { ids: event.cancelled.map((id) => "#" + id).join(", ") }) : "";
  return el("tr", { className: "event-row", dataset: { id: String(event.id), status } }, [
    el("td", { text: formatDateTime(event.received_at || event.created_at) }),
    el("td", { className: "event-name", text: event.event }),
    el("td", { className: "event-client", text: event.client || t("(deleted client)") }),
    el("td", { className: "event-status" }, [el("span", { text: STATUS_TEXT[status] || status }), ...repeats(event, status)]),
    el("td", { className: "event-scheduled", text: [scheduled(event), cancelled].filter(Boolean).join(" · ") }),
  ]);
}

function delayText(seconds) {
  if (!seconds) return t("at once");
  if (seconds % 86400 === 0) return fmt(t("after %(n)s day(s)"), { n: seconds / 86400 });
  if (seconds % 3600 === 0) return fmt(t("after %(n)s hour(s)"), { n: seconds / 3600 });
  return fmt(t("after %(n)s s"), { n: seconds });
}

function ruleCard(rule) {
  const parts = [delayText(rule.delay_seconds), fmt(t("priority %(n)s"), { n: rule.priority })];
  if ((rule.transports || []).length) parts.push(rule.transports.join(" → "));
  if ((rule.cancel_events || []).length) parts.push(fmt(t("unless %(events)s"), { events: rule.cancel_events.join(", ") }));
  if (rule.promo) parts.push(t("promotional"));
  if (!rule.active) parts.push(t("inactive"));
  const label = fmt(t("On %(event)s: %(template)s"), { event: rule.event, template: templateName(rule.template) });
  const children = [el("h3", { text: label }), el("p", { className: "muted", text: parts.join(" · ") })];
  if (isAdmin()) {
    children.push(el("div", { className: "actions" }, [
      el("button", { type: "button", text: t("Edit"), "aria-label": fmt(t("Edit %(rule)s"), { rule: label }), onclick: () => edit(rule) }),
      el("button", { type: "button", text: t("Delete"), "aria-label": fmt(t("Delete %(rule)s"), { rule: label }), onclick: () => { panel.confirming = rule.id; render(); } }),
    ]));
    if (panel.confirming === rule.id) {
      children.push(el("div", { className: "wi-confirm", role: "group", "aria-label": t("Confirm") }, [
        el("p", { text: t("Delete this rule? Notifications it already scheduled stay.") }),
        el("button", { type: "button", className: "primary", text: t("Delete rule"), onclick: () => remove(rule) }),
        el("button", { type: "button", text: t("Cancel"), onclick: () => { panel.confirming = null; render(); } }),
      ]));
    }
  }
  return el("li", { className: "card event-rule", dataset: { id: String(rule.id) } }, children);
}

function field(name, label, input, hint) {
  input.id = "rule-" + name;
  input.name = name;
  const children = [el("label", { for: input.id, text: label }), input];
  if (hint) {
    input.setAttribute("aria-describedby", input.id + "-hint");
    children.push(el("small", { id: input.id + "-hint", className: "muted", text: hint }));
  }
  children.push(el("span", { className: "form-error field-error", id: input.id + "-error", role: "alert" }));
  return el("div", { className: "field" }, children);
}

function ruleForm() {
  const rule = panel.editing === "new" ? null : panel.editing;
  const templates = el("select", {}, panel.templates.map((tpl) => el("option", { value: String(tpl.id), text: tpl.title + " (" + tpl.code + ")" })));
  if (rule) templates.value = String(rule.template);
  const transports = el("select", {}, TRANSPORTS.map(([value, text]) => el("option", { value, text })));
  transports.value = rule ? (rule.transports || []).join(",") : "";
  const check = (name, text, checked) => el("p", {}, [el("label", {}, [el("input", { type: "checkbox", id: "rule-" + name, checked }), " " + text])]);
  const form = el("form", { id: "rule-form", className: "mailing-form", novalidate: true }, [
    el("h3", { text: rule ? t("Edit rule") : t("New rule") }),
    field("event", t("Event name"), el("input", { type: "text", maxlength: 50, value: rule ? rule.event : "" }), t("As the service posts it, e.g. user_registered.")),
    field("template", t("Template"), templates),
    field("transports", t("Transports"), transports),
    field("delay_seconds", t("Delay in seconds (0: at once)"), el("input", { type: "number", min: 0, value: String(rule ? rule.delay_seconds : 0) })),
    field("priority", t("Priority (1-10)"), el("input", { type: "number", min: 1, max: 10, value: String(rule ? rule.priority : 5) })),
    field("cancel_events", t("Cancelled by events"), el("input", { type: "text", value: rule ? (rule.cancel_events || []).join(", ") : "" }), t("Comma separated; only a delayed notification can be cancelled.")),
    check("promo", t("Promotional"), rule ? rule.promo : false),
    check("active", t("Active"), rule ? rule.active : true),
    el("div", { className: "actions" }, [
      el("button", { type: "submit", className: "primary", id: "rule-submit", text: rule ? t("Save rule") : t("Create rule") }),
      el("button", { type: "button", text: t("Cancel"), onclick: () => { panel.editing = null; render(); } }),
    ]),
    el("p", { id: "rule-form-error", className: "form-error", role: "alert" }),
  ]);
  form.addEventListener("submit", (event) => save(event, rule));
  return form;
}

function save(event, rule) {
  event.preventDefault();
  document.querySelectorAll("#rule-form .field-error").forEach((node) => (node.textContent = ""));
  const value = (name) => $("rule-" + name).value;
  const body = {
    event: value("event").trim(),
    template: Number(value("template")),
    transports: value("transports") ? value("transports").split(",") : [],
    delay_seconds: Number(value("delay_seconds")),
    priority: Number(value("priority")),
    cancel_events: value("cancel_events").split(/[\s,]+/).filter(Boolean),
    promo: $("rule-promo").checked,
    active: $("rule-active").checked,
  };
  if (!rule) body.organization = state.org;
  const request = rule ? api("PATCH", "/api/event-rules/" + rule.id + "/", body) : api("POST", "/api/event-rules/", body);
  $("rule-submit").disabled = true;
  request
    .then((result) => {
      panel.rules = panel.rules.filter((r) => r.id !== result.data.id).concat([result.data]);
      panel.editing = null;
      notify(rule ? t("Rule saved.") : t("Rule created."));
      render();
    })
    .catch((err) => {
      let first = null;
      for (const name of Object.keys(err.fields || {})) {
        const node = FIELDS.includes(name) && $("rule-" + name + "-error");
        if (!node) continue;
        node.textContent = [].concat(err.fields[name]).join(" ");
        $("rule-" + name).setAttribute("aria-invalid", "true");
        first = first || $("rule-" + name);
      }
      $("rule-form-error").textContent = first ? t("Please correct the fields above.") : err.message;
      if (first) first.focus();
      $("rule-submit").disabled = false;
    });
}

function edit(rule) {
  panel.editing = rule;
  panel.confirming = null;
  render();
  $("rule-event").focus();
}

function remove(rule) {
  api("DELETE", "/api/event-rules/" + rule.id + "/")
    .then(() => {
      panel.rules = panel.rules.filter((r) => r.id !== rule.id);
      panel.confirming = null;
      notify(t("Rule deleted."));
      render();
    })
    .catch((err) => notify(err.message, "error"));
}

function render() {
  const body = $("events-body");
  if (!body) return;
  if (!panel.available) return unavailable(body, t("Events"));
  clear(body);
  body.appendChild(el("h3", { text: t("Rules") }));
  if (isAdmin()) {
    if (panel.editing) body.appendChild(ruleForm());
    else body.appendChild(el("p", {}, [el("button", { type: "button", id: "rule-new", className: "primary", text: t("New rule"), onclick: () => edit("new") })]));
  } else {
    body.appendChild(el("p", { className: "muted", text: t("Organization admins add and change event rules.") }));
  }
  const rules = el("ul", { className: "cards", id: "event-rules" });
  if (!panel.rules.length) rules.appendChild(el("li", { className: "muted", text: t("No event rules yet.") }));
  for (const rule of panel.rules.slice().sort((a, b) => a.id - b.id)) rules.appendChild(ruleCard(rule));
  body.appendChild(rules);
  body.appendChild(el("h3", { text: t("Recent events") }));
  const table = el("table", { className: "stats events-table", id: "events-table" }, [
    el("caption", { className: "visually-hidden", text: t("Recent events") }),
    el("tr", {}, [t("Received"), t("Event"), t("Client"), t("Status"), t("Scheduled")].map((text) => el("th", { scope: "col", text }))),
  ]);
  for (const event of panel.events) table.appendChild(eventRow(event));
  if (!panel.events.length) body.appendChild(el("p", { className: "muted", id: "events-empty", text: t("No events yet.") }));
  body.appendChild(el("div", { className: "table-scroll" }, [table]));
}

on("event_received", (data) => {
  if (data.organization && data.organization !== state.org) return;
  // A duplicate is a row of its own (when it came), the event itself keeps its row.
  const row = Object.assign({}, data, { received_at: data.status === "duplicate" ? new Date().toISOString() : data.created_at });
  if (data.status !== "duplicate") panel.events = panel.events.filter((e) => e.id !== data.id || e.status === "duplicate");
  // ... and shows the repeat's count, which the frame carries as the API now gives it.
  else panel.events = panel.events.map((e) => (e.id === data.id && e.status !== "duplicate" ? Object.assign({}, e, { duplicates: data.duplicates, last_duplicate_at: data.last_duplicate_at }) : e));
  panel.events.unshift(row);
  panel.events = panel.events.slice(0, 100);
  if (!panel.editing) render();
});

addLoader(() => {
  const org = state.org;
  const query = "?" + orgQuery(org);
  return Promise.all([
    api("GET", "/api/events/" + query + "&page_size=50"),
    api("GET", "/api/event-rules/" + query + "&page_size=200"),
    api("GET", "/api/templates/" + query + "&page_size=200"),
  ])
    .then(([events, rules, templates]) => {
      if (org !== state.org) return;
      panel.available = true;
      panel.events = events.data.map((e) => Object.assign({ status: "processed" }, e));
      panel.rules = rules.data;
      panel.templates = templates.data;
      panel.editing = null;
      render();
    })
    .catch((err) => {
      if (err.status !== 404) throw err;
      panel.available = false;
      render();
    });
});
