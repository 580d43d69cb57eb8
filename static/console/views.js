/* The inbox's views (Mine / Unassigned / All) and filters (status, team), with counts
 * (GET /api/help-desks/counts/). The choice is kept in localStorage; a change is
 * announced with emit("view-changed") and the inbox (inbox.js) reloads. */
import { api, orgQuery } from "./api.js";
import { emit, state } from "./core.js";
import { $, clear, el } from "./dom.js";
import { t } from "./i18n.js";
import { isMe, people, teamName } from "./people.js";

export const views = { counts: null, countsTimer: null, filter: loadFilter() };

function loadFilter() {
  try {
    const saved = JSON.parse(localStorage.getItem("console.inboxFilter") || "null");
    if (saved && ["mine", "unassigned", "all"].includes(saved.view)) {
      return { view: saved.view, status: saved.status || "", team: saved.team || "" };
    }
  } catch (e) {
    /* private mode or a bad value */
  }
  return { view: "all", status: "", team: "" };
}

function saveFilter() {
  try {
    localStorage.setItem("console.inboxFilter", JSON.stringify(views.filter));
  } catch (e) {
    /* private mode */
  }
}

export function normalStatus(status) {
  return status === "closed" ? "resolved" : status || "open";
}

// The view's rule, applied on the page too: a desk an event moves out of the view
// leaves the list (and one moved into it appears) without asking the server.
export function matches(desk) {
  const f = views.filter;
  if (f.view === "mine" && !isMe(desk.assignee)) return false;
  if (f.view === "unassigned" && desk.assignee) return false;
  const status = normalStatus(desk.status);
  if (f.status ? status !== f.status : status === "resolved") return false;
  if (f.team && !(desk.team && String(desk.team.id !== undefined ? desk.team.id : desk.team) === f.team)) return false;
  return true;
}

export function viewQuery() {
  const f = views.filter;
  let query = "&view=" + f.view;
  if (f.status) query += "&status=" + encodeURIComponent(f.status);
  if (f.team) query += "&team=" + encodeURIComponent(f.team);
  return query;
}

// ------------------------------------------------------------------- counts --

export function loadCounts() {
  const org = state.org;
  clearTimeout(views.countsTimer);
  views.countsTimer = null;
  return api("GET", "/api/help-desks/counts/?" + orgQuery(org))
    .then((result) => {
      if (org !== state.org) return;
      views.counts = result.data;
      renderCounts();
    })
    .catch(() => {
      views.counts = null; // a server without counts: the views work without numbers
      renderCounts();
    });
}

// Counts follow events, at most once a second (a busy inbox sends many).
export function countsSoon() {
  if (!views.countsTimer) views.countsTimer = setTimeout(loadCounts, 1000);
}

export function renderCounts() {
  const counts = views.counts || {};
  document.querySelectorAll("#inbox-views button[data-view]").forEach((button) => {
    const view = button.dataset.view;
    button.setAttribute("aria-pressed", String(view === views.filter.view));
    const badge = button.querySelector(".count");
    const n = counts[view];
    badge.textContent = typeof n === "number" ? String(n) : "";
  });
  const status = $("filter-status");
  const byStatus = counts.status || {};
  for (const option of status.options) {
    const n = byStatus[option.value];
    option.textContent = option.dataset.label + (typeof n === "number" ? " (" + n + ")" : "");
  }
  status.value = views.filter.status;
  const team = $("filter-team");
  const teams = (counts.teams || people.teams || []).slice();
  if (views.filter.team && !teams.some((x) => String(x.id) === views.filter.team)) teams.push({ id: views.filter.team, name: "#" + views.filter.team });
  clear(team);
  team.appendChild(el("option", { value: "", text: t("All teams") }));
  for (const item of teams) {
    const n = item.count;
    team.appendChild(el("option", { value: String(item.id), text: teamName(item) + (typeof n === "number" ? " (" + n + ")" : "") }));
  }
  team.value = views.filter.team;
  team.parentNode.hidden = teams.length === 0;
}

function setFilter(change) {
  Object.assign(views.filter, change);
  saveFilter();
  renderCounts();
  emit("view-changed");
}

document.querySelectorAll("#inbox-views button[data-view]").forEach((button) => {
  button.addEventListener("click", () => setFilter({ view: button.dataset.view }));
});
$("filter-status").addEventListener("change", (event) => setFilter({ status: event.target.value }));
$("filter-team").addEventListener("change", (event) => setFilter({ team: event.target.value }));
for (const option of $("filter-status").options) option.dataset.label = option.textContent;

