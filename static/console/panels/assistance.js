/* Assistance requests (docs/assistance.md): the agent's teams' requests first (a
 * checkbox shows the whole organization), live `assistance_requested` /
 * `assistance_accepted`, Accept (a 409 — someone else was first — refreshes the card)
 * and Open conversation. Waiting requests are counted on the tab. */
import { api, orgQuery } from "../api.js";
import { addLoader, config, on, state } from "../core.js";
import { $, clear, el, formatTime, notify, setBadge } from "../dom.js";
import { fmt, t } from "../i18n.js";
import { openHelpDesk } from "../nav.js";
import { unavailable } from "./common.js";

const assistance = { items: new Map(), next: null, onlyMine: true, available: true };

function myTeams() {
  return (config.teams || {})[state.org] || [];
}

function forMe(item) {
  return item.assignee === config.username || (item.team && myTeams().includes(item.team));
}

function shown(item) {
  return !assistance.onlyMine || !myTeams().length || forMe(item);
}

function card(item) {
  const actions = [];
  if (item.status !== "accepted") {
    actions.push(
      el("button", {
        type: "button",
        className: "primary",
        text: t("Accept"),
        "aria-label": fmt(t("Accept assistance request on %(topic)s"), { topic: item.topic }),
        onclick: (event) => accept(item, event.currentTarget),
      })
    );
  }
  if (item.help_desk) {
    actions.push(el("button", { type: "button", text: t("Open conversation"), onclick: () => openHelpDesk(item.help_desk) }));
  }
  const who = item.status === "accepted"
    ? fmt(t("Accepted by %(name)s"), { name: item.accepted_by || "?" })
    : item.assignee
      ? fmt(t("Assigned to %(name)s"), { name: item.assignee === config.username ? t("you") : item.assignee })
      : item.status === "received" ? t("Routing…") : t("Nobody available");
  return el("li", { className: "card assistance", dataset: { id: item.id, status: item.status } }, [
    el("h3", {}, [el("span", { text: item.topic }), item.team ? el("span", { className: "muted", text: " · " + fmt(t("team %(team)s"), { team: item.team }) }) : null]),
    item.description ? el("p", { className: "description", text: item.description }) : null,
    el("p", { className: "muted" }, [el("span", { className: "status", text: who }), " · ", el("time", { datetime: item.created_at, text: formatTime(item.created_at) })]),
    actions.length ? el("div", { className: "actions" }, actions) : null,
  ]);
}

function render() {
  const body = $("assistance-body");
  if (!assistance.available) return unavailable(body, t("Assistance requests"));
  clear(body);
  const teams = myTeams();
  body.appendChild(
    el("p", { className: "filter" }, [
      el("label", {}, [
        el("input", {
          type: "checkbox",
          id: "assistance-only-mine",
          checked: assistance.onlyMine && teams.length ? true : null,
          disabled: teams.length ? null : true,
          onchange: (event) => {
            assistance.onlyMine = event.target.checked;
            render();
          },
        }),
        " " + (teams.length ? fmt(t("Only my teams (%(teams)s)"), { teams: teams.join(", ") }) : t("Only my teams: you are in no team here, showing all")),
      ]),
    ])
  );
  const items = Array.from(assistance.items.values())
    .filter(shown)
    .sort((a, b) => {
      const openA = a.status !== "accepted" ? 0 : 1;
      const openB = b.status !== "accepted" ? 0 : 1;
      if (openA !== openB) return openA - openB;
      return (b.created_at || "") < (a.created_at || "") ? -1 : 1;
    });
  if (!items.length) body.appendChild(el("p", { className: "muted", text: t("No assistance requests.") }));
  body.appendChild(el("ul", { className: "cards", id: "assistance-list" }, items.map(card)));
  if (assistance.next) {
    body.appendChild(el("button", { type: "button", text: t("Load older requests"), onclick: () => load(assistance.next) }));
  }
  const waiting = Array.from(assistance.items.values()).filter((item) => item.status !== "accepted" && shown(item)).length;
  setBadge($("assistance-badge"), waiting, t("waiting"));
}

function load(url) {
  const org = state.org;
  const first = !url;
  return api("GET", url || "/api/assistance/?" + orgQuery(org) + "&page_size=50")
    .then((result) => {
      if (org !== state.org) return;
      if (first) assistance.items = new Map();
      for (const item of result.data) assistance.items.set(item.id, item);
      assistance.next = result.next;
      assistance.available = true;
      render();
    })
    .catch((err) => {
      if (err.status === 404 && first) {
        assistance.available = false;
        render();
      } else throw err;
    });
}

function accept(item, button) {
  button.disabled = true;
  api("POST", "/api/assistance/" + item.id + "/accept/")
    .then((result) => {
      assistance.items.set(result.data.id, result.data);
      render();
      notify(fmt(t("Accepted: %(topic)s"), { topic: result.data.topic }));
    })
    .catch((err) => {
      button.disabled = false;
      notify(err.message, "error");
      if (err.status === 409) {
        api("GET", "/api/assistance/" + item.id + "/").then((result) => {
          assistance.items.set(result.data.id, result.data);
          render();
        });
      }
    });
}

function onEvent(item, frame) {
  if (!item || !item.id || (item.organization && item.organization !== state.org)) return;
  const known = assistance.items.get(item.id);
  if (known && known.status === "accepted" && item.status !== "accepted") return; // never backwards
  assistance.items.set(item.id, item);
  render();
  if (frame.type === "assistance_requested" && shown(item)) {
    notify(fmt(t("Assistance requested: %(topic)s"), { topic: item.topic }) + (item.description ? " — " + item.description : ""));
  }
}
on("assistance_requested", onEvent);
on("assistance_accepted", onEvent);
addLoader(() => load(null));
