/* Who is who: the organization's members and teams (for the assignment pickers and
 * names), and how a help desk's assignee / team / client is named, whatever shape the
 * API gives (a username string, or an object {id, username, name}). */
import { api, orgQuery } from "./api.js";
import { addLoader, config, state } from "./core.js";
import { t } from "./i18n.js";

export const people = { members: [], teams: [], me: null };

export function userName(user) {
  if (!user) return null;
  if (typeof user === "string") return user;
  return user.name || user.username || (user.id !== undefined ? "#" + user.id : null);
}

export function userKey(user) {
  if (!user) return null;
  if (typeof user === "string") return user;
  return user.username || (user.id !== undefined ? String(user.id) : null);
}

export function isMe(user) {
  if (!user) return false;
  if (typeof user === "string") return user === config.username;
  if (user.username) return user.username === config.username;
  return people.me !== null && String(user.id) === String(people.me.id);
}

// A help_desk_read event names the agent by id (or username): is it this agent?
export function isMeById(agent) {
  if (agent === null || agent === undefined) return false;
  if (String(agent) === config.username) return true;
  return people.me !== null && String(agent) === String(people.me.id);
}

export function clientName(client) {
  client = client || {};
  return client.name || client.phone || client.email || t("Client");
}

export function teamName(team) {
  if (!team) return null;
  if (typeof team === "string") return team;
  return team.name || team.slug || "#" + team.id;
}

// Both lists are optional: a server without them leaves the pickers with what it has.
addLoader(() => {
  const org = state.org;
  return Promise.all([
    api("GET", "/api/organizations/" + encodeURIComponent(org) + "/members/").catch(() => ({ data: [] })),
    api("GET", "/api/teams/?" + orgQuery(org) + "&page_size=200").catch(() => ({ data: [] })),
  ]).then(([members, teams]) => {
    if (org !== state.org) return;
    people.members = Array.isArray(members.data) ? members.data : [];
    people.teams = Array.isArray(teams.data) ? teams.data : [];
    people.me = people.members.find((m) => m.username === config.username) || null;
  });
});
