/* Mailings: the list with counts (GET /api/mailings/stats/), live progress from the
 * mailing events (each frame a sample of the chart), statistics (GET
 * /api/mailings/<id>/stats/ + its messages, charted over time). A mailing the page
 * first hears of from a progress event (created elsewhere) is fetched once
 * (GET /api/mailings/<id>/), so it shows with its name and dates, not "Mailing #1". */
import { api, orgQuery } from "../api.js";
import { addLoader, listen, on, state } from "../core.js";
import { $, clear, el, formatTime, notify } from "../dom.js";
import { fmt, t } from "../i18n.js";
import { STATUSES, STATUS_NAMES, drawChart } from "./chart.js";
import { buildForm, loadPreviewClients, mailingForm } from "./mailing-form.js";

const DONE = ["sent", "failed", "expired"];
const STATUS_TEXT = { scheduled: t("scheduled"), running: t("running"), finished: t("finished"), cancelled: t("cancelled") };
export const mailings = { items: new Map(), available: true, fetched: new Set() };

function title(item) {
  return (item.name || fmt(t("Mailing #%(id)s"), { id: item.id })) + " — " + (STATUS_TEXT[item.status] || item.status || "?");
}

function doneOf(counts) {
  return DONE.reduce((sum, status) => sum + ((counts || {})[status] || 0), 0);
}

// On a phone the table is laid out as a grid (console.css: two rows of three, none cut
// off); a table given another `display` loses its role in some browsers, so the roles
// are said explicitly and a screen reader still reads each count under its status.
function countsTable(counts) {
  const keys = STATUSES.concat(["total"]);
  return el("table", { className: "stats counts-table", role: "table" }, [
    el("caption", { className: "visually-hidden", text: t("Messages by status") }),
    el("tr", { role: "row" }, keys.map((status) => el("th", { scope: "col", role: "columnheader", text: STATUS_NAMES[status] }))),
    el("tr", { role: "row" }, keys.map((status) => el("td", { role: "cell", dataset: { status }, text: String((counts || {})[status] || 0) }))),
  ]);
}

function dates(item) {
  if (!item.start_at) return null;
  let text = fmt(t("From %(start)s to %(end)s"), { start: formatTime(item.start_at), end: formatTime(item.end_at) });
  if (item.window_start) text += " · " + fmt(t("daily window %(start)s–%(end)s"), { start: item.window_start, end: item.window_end });
  if ((item.tags || []).length) text += " · " + fmt(t("tags %(tags)s"), { tags: item.tags.join(", ") });
  if ((item.operator_codes || []).length) text += " · " + fmt(t("operators %(codes)s"), { codes: item.operator_codes.join(", ") });
  return el("p", { className: "muted mailing-dates", text });
}

function card(item) {
  const counts = item.counts || {};
  const total = counts.total || 0;
  const done = doneOf(counts);
  const progressId = "mailing-progress-" + item.id;
  const samples = item.history || item.samples;
  const children = [
    el("h3", { text: title(item) }),
    dates(item),
    el("label", { for: progressId, text: fmt(t("%(done)s of %(total)s handled"), { done, total }) }),
    el("progress", { id: progressId, className: "progress", max: String(Math.max(total, 1)), value: String(done) }),
  ];
  if (samples && samples.length) {
    children.push(el("div", { className: "chart" }, [drawChart(samples, fmt(t("Messages of %(mailing)s by status over time"), { mailing: title(item) }))]));
  }
  children.push(countsTable(counts));
  if (item.stats) {
    const s = item.stats;
    let text = fmt(t("%(n)s attempt(s)"), { n: s.attempts });
    if (s.duration_seconds !== null && s.duration_seconds !== undefined) text += " · " + s.duration_seconds + " s";
    if (s.throughput_per_second !== null && s.throughput_per_second !== undefined) text += " · " + fmt(t("%(n)s sent/s"), { n: s.throughput_per_second });
    if (item.historyPartial) text += " · " + fmt(t("chart of the first %(n)s messages"), { n: item.historyCount });
    children.push(el("p", { className: "muted", text }));
  }
  if (mailings.available && !item.stats) {
    children.push(el("div", { className: "actions" }, [
      el("button", {
        type: "button",
        text: t("Statistics"),
        "aria-label": fmt(t("Statistics of %(mailing)s"), { mailing: title(item) }),
        onclick: (event) => {
          event.currentTarget.disabled = true;
          loadStats(item.id);
        },
      }),
    ]));
  }
  return el("li", { className: "card mailing", dataset: { id: String(item.id), status: item.status || "", done: String(done), total: String(total) } }, children);
}

export function renderList() {
  const box = $("mailings-live");
  if (!box) return;
  clear(box);
  const items = Array.from(mailings.items.values()).sort((a, b) => b.id - a.id);
  if (!items.length) {
    box.appendChild(el("p", { className: "muted", text: t("No mailings yet.") }));
    return;
  }
  box.appendChild(el("ul", { className: "cards", id: "mailing-live-list" }, items.map(card)));
}

// Messages by status over time from the messages themselves: each one leaves `pending`
// when it was sent (sent_at) or given up (its last attempt). Capped at 10 pages.
function loadStats(id) {
  if (!mailings.items.get(id)) return;
  let messages = [];
  const page = (url, left) => api("GET", url).then((result) => {
    messages = messages.concat(result.data);
    if (result.next && left > 1) return page(result.next, left - 1);
    return !!result.next;
  });
  Promise.all([api("GET", "/api/mailings/" + id + "/stats/"), page("/api/mailings/" + id + "/messages/?page_size=200", 10)])
    .then(([statsResult, partial]) => {
      const stats = statsResult.data;
      const events = [];
      for (const msg of messages) {
        let when = null;
        if (msg.status === "sent") when = msg.sent_at;
        else if (msg.status === "failed" || msg.status === "expired") {
          const last = (msg.attempts || [])[msg.attempts.length - 1];
          when = last ? last.created_at : msg.created;
        }
        if (when) events.push({ t: Date.parse(when), status: msg.status });
      }
      events.sort((a, b) => a.t - b.t);
      const total = partial ? messages.length : stats.counts.total;
      const running = { pending: total, sending: 0, sent: 0, failed: 0, expired: 0 };
      const start = Date.parse(stats.started_at || (messages[0] && messages[0].created) || "") || (events[0] ? events[0].t : Date.now());
      const history = [{ t: start, counts: Object.assign({}, running) }];
      for (const event of events) {
        running.pending -= 1;
        running[event.status] += 1;
        history.push({ t: Math.max(event.t, start), counts: Object.assign({}, running) });
      }
      const target = mailings.items.get(id);
      if (!target) return;
      Object.assign(target, { stats, counts: stats.counts, history, historyPartial: partial, historyCount: messages.length });
      renderList();
    })
    .catch((err) => {
      notify(fmt(t("Could not load the statistics: %(error)s"), { error: err.message }), "error");
      renderList();
    });
}

// The details of a mailing the page knows only from an event: once per mailing.
function fetchDetails(id) {
  if (mailings.fetched.has(id)) return;
  mailings.fetched.add(id);
  const org = state.org;
  api("GET", "/api/mailings/" + id + "/")
    .then((result) => {
      const item = mailings.items.get(id);
      if (org !== state.org || !item) return;
      const fresh = result.data;
      for (const key of Object.keys(fresh)) if (!(key in item) || key !== "status") item[key] = fresh[key];
      renderList();
    })
    .catch(() => {
      /* the card keeps what the events said */
    });
}

export function upsertMailing(data) {
  const item = mailings.items.get(data.id) || { id: data.id, samples: [] };
  const finished = item.status && item.status !== "running" && item.status !== "scheduled";
  for (const key of Object.keys(data)) {
    if (key === "status" && finished && data.status === "running") continue; // finished stays
    if (data[key] !== null && data[key] !== undefined) item[key] = data[key];
  }
  mailings.items.set(data.id, item);
  return item;
}

function onMailing(data, frame) {
  if (!data || data.id === undefined || data.id === null) return;
  if (data.organization && data.organization !== state.org) return;
  const item = upsertMailing(data);
  item.samples = item.samples || [];
  if (data.counts) item.samples.push({ t: Date.now(), counts: data.counts });
  if (item.samples.length > 500) item.samples.splice(1, item.samples.length - 500);
  if (!item.name || !item.start_at) fetchDetails(item.id);
  renderList();
  if (frame.type === "mailing_finished") notify(fmt(t("%(mailing)s finished."), { mailing: item.name || fmt(t("Mailing #%(id)s"), { id: item.id }) }));
}
for (const type of ["mailing_progress", "mailing_finished", "mailing_created", "new_mailing", "update_mailing"]) on(type, onMailing);

function renderShell() {
  const body = $("mailings-body");
  clear(body);
  body.appendChild(el("div", { id: "mailings-live" }));
  body.appendChild(el("h3", { text: t("New mailing") }));
  if (mailings.available) {
    body.appendChild(buildForm());
    loadPreviewClients();
  } else {
    body.appendChild(el("p", { className: "placeholder", text: t("Creating mailings needs the mailing API, which is not on this server yet.") }));
  }
  renderList();
}

addLoader(() => {
  const org = state.org;
  const query = "?" + orgQuery(org);
  return Promise.all([api("GET", "/api/mailings/stats/" + query + "&page_size=20"), api("GET", "/api/templates/" + query + "&page_size=200")])
    .then(([list, templates]) => {
      if (org !== state.org) return;
      mailings.available = true;
      const previous = mailings.items;
      mailings.items = new Map();
      mailings.fetched = new Set();
      for (const mailing of list.data) {
        const old = previous.get(mailing.id);
        mailing.samples = old ? old.samples : [];
        mailings.items.set(mailing.id, mailing);
      }
      mailingForm.templates = templates.data;
      renderShell();
    })
    .catch((err) => {
      if (err.status !== 404) throw err;
      mailings.available = false;
      mailings.items = new Map();
      renderShell();
    });
});

listen("mailing-created", (data) => {
  upsertMailing(data);
  renderList();
});
