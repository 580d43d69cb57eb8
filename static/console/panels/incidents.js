/* Incidents (docs/escalation.md): open and acknowledged ones, highest level first, live
 * from the incident events (status and level only move forward here too); Acknowledge
 * and Resolve. Cards name the rule by its name (its code when the server gives no name).
 * Occurrence counts change without an event of their own, so an incident is re-read on
 * each of its events and the list when the tab is opened. */
import { api, orgQuery } from "../api.js";
import { addLoader, listen, on, state } from "../core.js";
import { $, clear, el, formatTime, notify, setBadge } from "../dom.js";
import { fmt, t, tn } from "../i18n.js";
import { unavailable } from "./common.js";

const incidents = { items: new Map(), available: true, ruleNames: new Map(), asked: new Set() };
const RANK = { open: 0, acknowledged: 1, resolved: 2 };

// The rule's name: from the incident when the server gives it (its snapshot), else the
// organization's rule of that code (GET /api/escalation/rules/), else the code itself.
export function ruleName(item) {
  const rule = item.rule;
  if (rule && typeof rule === "object") return rule.name || rule.code || t("incident");
  return item.rule_name || incidents.ruleNames.get(ruleCode(item)) || rule || t("incident");
}

function ruleCode(item) {
  const rule = item.rule;
  if (rule && typeof rule === "object") return rule.code || null;
  return item.rule_code || rule || null;
}

function loadRuleNames(org) {
  return api("GET", "/api/escalation/rules/?" + orgQuery(org) + "&page_size=200")
    .then((result) => {
      if (org !== state.org) return;
      incidents.ruleNames = new Map(result.data.filter((r) => r.name).map((r) => [r.code, r.name]));
    })
    .catch(() => {
      /* codes it is */
    });
}

function card(item) {
  const name = ruleName(item);
  const code = ruleCode(item);
  const triggers = (item.triggers || [])
    .map((tr) => (typeof tr === "string" ? tr : [tr.service || tr.servico, tr.status || tr.retorno].filter(Boolean).join(" ")))
    .join(", ");
  const actions = [];
  if (item.status === "open") {
    actions.push(el("button", { type: "button", text: t("Acknowledge"), "aria-label": fmt(t("Acknowledge incident %(rule)s"), { rule: name }), onclick: (e) => act(item, "acknowledge", e.currentTarget) }));
  }
  actions.push(el("button", { type: "button", className: "primary", text: t("Resolve"), "aria-label": fmt(t("Resolve incident %(rule)s"), { rule: name }), onclick: (e) => act(item, "resolve", e.currentTarget) }));
  const level = String(item.level || 0);
  const occurrences = item.occurrences || 0;
  return el("li", { className: "card incident", dataset: { id: item.id, status: item.status, level } }, [
    el("h3", {}, [
      el("span", { className: "level", dataset: { level }, text: fmt(t("Level %(level)s"), { level }) }),
      " ",
      el("span", { className: "rule-name", text: name }),
      code && code !== name ? el("span", { className: "muted rule-code", text: " (" + code + ")" }) : null,
    ]),
    triggers ? el("p", { text: fmt(t("Triggers: %(triggers)s"), { triggers }) }) : null,
    el("p", { className: "muted" }, [
      el("span", { className: "status", text: item.status === "acknowledged" ? fmt(t("Acknowledged by %(name)s"), { name: item.acknowledged_by || "?" }) : t("Open") }),
      " · " + fmt(tn("%(n)s occurrence(s)", "%(n)s occurrence(s)", occurrences), { n: occurrences }) + " · " + t("opened") + " ",
      el("time", { datetime: item.opened_at, text: formatTime(item.opened_at) }),
    ]),
    el("div", { className: "actions" }, actions),
  ]);
}

function render() {
  const body = $("incidents-body");
  if (!incidents.available) return unavailable(body, t("Incidents"));
  clear(body);
  const open = Array.from(incidents.items.values())
    .filter((item) => item.status !== "resolved")
    .sort((a, b) => {
      if ((b.level || 0) !== (a.level || 0)) return (b.level || 0) - (a.level || 0);
      return (b.opened_at || "") < (a.opened_at || "") ? -1 : 1;
    });
  if (!open.length) body.appendChild(el("p", { className: "muted", text: t("No open incidents.") }));
  body.appendChild(el("ul", { className: "cards", id: "incident-list" }, open.map(card)));
  setBadge($("incidents-badge"), open.filter((item) => item.status === "open").length, t("open"));
}

function load() {
  const org = state.org;
  const base = "/api/incidents/?" + orgQuery(org) + "&page_size=100&status=";
  return Promise.all([api("GET", base + "open"), api("GET", base + "acknowledged"), loadRuleNames(org)])
    .then((results) => {
      results = results.slice(0, 2);
      if (org !== state.org) return;
      incidents.items = new Map();
      incidents.available = true;
      for (const result of results) for (const item of result.data) incidents.items.set(item.id, item);
      render();
    })
    .catch((err) => {
      if (err.status !== 404) throw err;
      incidents.available = false;
      render();
    });
}

function upsert(item) {
  if (!item || !item.id || (item.organization && item.organization !== state.org)) return;
  const code = ruleCode(item);
  if (code && !item.rule_name && !incidents.ruleNames.has(code) && !incidents.asked.has(code)) {
    incidents.asked.add(code); // once per code
    loadRuleNames(state.org).then(render);
  }
  const known = incidents.items.get(item.id);
  if (known && RANK[known.status] > RANK[item.status]) return; // forward only
  if (known && known.status === item.status && (known.level || 0) > (item.level || 0)) return;
  if (known && known.status === item.status && (known.level || 0) === (item.level || 0) &&
      (known.occurrences || 0) > (item.occurrences || 0)) return;
  incidents.items.set(item.id, item);
  render();
}

function act(item, action, button) {
  button.disabled = true;
  api("POST", "/api/incidents/" + item.id + "/" + action + "/")
    .then((result) => upsert(result.data))
    .catch((err) => {
      button.disabled = false;
      notify(err.message, "error");
    });
}

for (const type of ["incident_opened", "incident_escalated", "incident_acknowledged", "incident_resolved"]) {
  on(type, (item) => {
    upsert(item);
    // Occurrence counts move without events of their own: fetch the current state.
    if (item && item.id && type !== "incident_resolved") {
      api("GET", "/api/incidents/" + item.id + "/").then((result) => upsert(result.data)).catch(() => {
        /* the event's copy stays */
      });
    }
    if (type === "incident_opened" || type === "incident_escalated") {
      const what = type === "incident_opened" ? t("Incident opened: %(rule)s (level %(level)s)") : t("Incident escalated: %(rule)s (level %(level)s)");
      notify(fmt(what, { rule: ruleName(item), level: item.level || 0 }));
    }
  });
}
addLoader(load);
listen("tab", (name) => {
  if (name === "incidents" && state.org) load();
});
