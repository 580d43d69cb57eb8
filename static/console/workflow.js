/* Workflow from the conversation header: status (open / pending / snoozed until a time /
 * resolved), assignee and team, each one PATCH /api/help-desks/<uuid>/. Every agent's
 * page follows through the `update_helpdesk` event the service publishes. */
import { api } from "./api.js";
import { config, listen, state } from "./core.js";
import { $, clear, el, formatDateTime, fromWallClock, toWallClock } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { normalStatus, upsertDesk } from "./inbox.js";
import { people, teamName, userKey, userName } from "./people.js";

function patch(body) {
  const uuid = state.openDesk;
  if (!uuid) return Promise.resolve();
  $("workflow-error").textContent = "";
  return api("PATCH", "/api/help-desks/" + uuid + "/", body)
    .then((result) => {
      upsertDesk(result.data, { rest: true });
      render();
    })
    .catch((err) => {
      $("workflow-error").textContent = fmt(t("Not changed: %(error)s"), { error: err.message });
      render();
    });
}

function render() {
  const desk = state.desks.get(state.openDesk);
  if (!desk) return;
  const status = normalStatus(desk.status);
  document.querySelectorAll("#status-buttons button[data-set-status]").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.setStatus === status));
  });
  const snoozed = $("snoozed-note");
  snoozed.hidden = status !== "snoozed" || !desk.snoozed_until;
  if (!snoozed.hidden) {
    snoozed.textContent = fmt(t("Snoozed until %(time)s"), { time: formatDateTime(desk.snoozed_until) });
  }
  // Assignee: nobody, me, then the other members (the current one even if not listed).
  const assignee = $("conv-assignee");
  clear(assignee);
  assignee.appendChild(el("option", { value: "", text: t("Unassigned") }));
  const current = desk.assignee;
  const members = people.members.slice();
  if (current && !members.some((m) => userKey(m) === userKey(current))) {
    members.push(typeof current === "string" ? { username: current } : current);
  }
  for (const member of members) {
    const label = member.username === config.username ? fmt(t("%(name)s (you)"), { name: userName(member) }) : userName(member);
    assignee.appendChild(el("option", { value: member.id !== undefined ? String(member.id) : member.username, dataset: { username: member.username || "" }, text: label }));
  }
  const selected = members.find((m) => current && userKey(m) === userKey(current));
  assignee.value = selected ? (selected.id !== undefined ? String(selected.id) : selected.username) : "";
  const team = $("conv-team");
  clear(team);
  team.appendChild(el("option", { value: "", text: t("No team") }));
  const teams = people.teams.slice();
  if (desk.team && !teams.some((x) => String(x.id) === String(desk.team.id))) teams.push(desk.team);
  for (const item of teams) team.appendChild(el("option", { value: String(item.id), text: teamName(item) }));
  team.value = desk.team ? String(desk.team.id) : "";
  team.parentNode.hidden = teams.length === 0;
}

document.querySelectorAll("#status-buttons button[data-set-status]").forEach((button) => {
  button.addEventListener("click", () => {
    const status = button.dataset.setStatus;
    if (status === "snoozed") {
      const box = $("snooze-box");
      box.hidden = !box.hidden;
      button.setAttribute("aria-expanded", String(!box.hidden));
      if (!box.hidden) {
        $("snooze-until").value = toWallClock(new Date(Date.now() + 3600 * 1000));
        $("snooze-until").focus();
      }
      return;
    }
    patch({ status });
  });
});

function snooze(until) {
  $("snooze-box").hidden = true;
  $("status-snooze").setAttribute("aria-expanded", "false");
  patch({ status: "snoozed", snoozed_until: until.toISOString() });
}

$("snooze-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("snooze-until").value;
  const until = fromWallClock(value); // in the agent's saved zone, else the browser's
  if (!until || isNaN(until.getTime()) || until.getTime() <= Date.now()) {
    $("workflow-error").textContent = t("Choose a time in the future.");
    return;
  }
  snooze(until);
});
$("snooze-tomorrow").addEventListener("click", () => {
  // 9:00 tomorrow on the agent's clock (the saved zone, else the browser's)
  const [day] = toWallClock(new Date(Date.now() + 86400000)).split("T");
  snooze(fromWallClock(day + "T09:00"));
});

$("conv-assignee").addEventListener("change", (event) => {
  const value = event.target.value;
  patch({ assignee: value === "" ? null : /^\d+$/.test(value) ? Number(value) : value });
});
$("conv-team").addEventListener("change", (event) => {
  const value = event.target.value;
  patch({ team: value === "" ? null : Number(value) });
});

listen("desk-opened", () => {
  $("snooze-box").hidden = true;
  $("workflow-error").textContent = "";
  render();
});
listen("open-desk-changed", render);
listen("inbox-loaded", render);
