/* Console panels beside the chat: assistance requests, incidents, mailings.
 * They use window.ConsoleApp (console.js): api(), el() (escaping builder), on(type, fn)
 * for websocket events and addLoader(fn) for (re)loading on start and on resync.
 */
(function () {
  "use strict";

  var app = window.ConsoleApp;
  var el = app.el;
  var clear = app.clear;

  function $(id) {
    return document.getElementById(id);
  }

  function setBadge(id, count, label) {
    var badge = $(id);
    badge.hidden = !count;
    clear(badge);
    if (count) {
      badge.appendChild(document.createTextNode(String(count)));
      badge.appendChild(el("span", { className: "visually-hidden", text: " " + label }));
    }
  }

  function unavailable(body, what) {
    clear(body);
    body.appendChild(
      el("p", { className: "placeholder", text: what + " are not available on this server yet." })
    );
  }

  // ----------------------------------------------------------------- assistance --

  var assistance = { items: new Map(), next: null, onlyMine: true, available: true };

  function assistanceForMe(item) {
    var teams = app.teams();
    return item.assignee === app.username || (item.team && teams.indexOf(item.team) >= 0);
  }

  function assistanceShown(item) {
    return !assistance.onlyMine || !app.teams().length || assistanceForMe(item);
  }

  function renderAssistance() {
    var body = $("assistance-body");
    if (!assistance.available) return unavailable(body, "Assistance requests");
    clear(body);
    var teams = app.teams();
    var filter = el("p", { className: "filter" }, [
      el("label", {}, [
        el("input", {
          type: "checkbox",
          id: "assistance-only-mine",
          checked: assistance.onlyMine && teams.length ? true : null,
          disabled: teams.length ? null : true,
          onchange: function (event) {
            assistance.onlyMine = event.target.checked;
            renderAssistance();
          },
        }),
        " Only my teams" + (teams.length ? " (" + teams.join(", ") + ")" : ": you are in no team here, showing all"),
      ]),
    ]);
    body.appendChild(filter);
    var items = Array.from(assistance.items.values())
      .filter(assistanceShown)
      .sort(function (a, b) {
        var openA = a.status !== "accepted" ? 0 : 1;
        var openB = b.status !== "accepted" ? 0 : 1;
        if (openA !== openB) return openA - openB;
        return (b.created_at || "") < (a.created_at || "") ? -1 : 1;
      });
    if (!items.length) body.appendChild(el("p", { className: "muted", text: "No assistance requests." }));
    var list = el("ul", { className: "cards", id: "assistance-list" });
    items.forEach(function (item) {
      var actions = [];
      if (item.status !== "accepted") {
        actions.push(
          el("button", {
            type: "button",
            className: "primary",
            text: "Accept",
            "aria-label": "Accept assistance request on " + item.topic,
            onclick: function (event) {
              acceptAssistance(item, event.currentTarget);
            },
          })
        );
      }
      if (item.help_desk) {
        actions.push(
          el("button", {
            type: "button",
            text: "Open conversation",
            onclick: function () {
              app.openHelpDesk(item.help_desk);
            },
          })
        );
      }
      var who = item.status === "accepted"
        ? "Accepted by " + (item.accepted_by || "?")
        : item.assignee
          ? "Assigned to " + (item.assignee === app.username ? "you" : item.assignee)
          : item.status === "received" ? "Routing…" : "Nobody available";
      list.appendChild(
        el("li", { className: "card assistance", dataset: { id: item.id, status: item.status } }, [
          el("h3", {}, [
            el("span", { text: item.topic }),
            item.team ? el("span", { className: "muted", text: " · team " + item.team }) : null,
          ]),
          item.description ? el("p", { className: "description", text: item.description }) : null,
          el("p", { className: "muted" }, [
            el("span", { className: "status", text: who }),
            " · ",
            el("time", { datetime: item.created_at, text: app.formatTime(item.created_at) }),
          ]),
          actions.length ? el("div", { className: "actions" }, actions) : null,
        ])
      );
    });
    body.appendChild(list);
    if (assistance.next) {
      body.appendChild(
        el("button", {
          type: "button",
          text: "Load older requests",
          onclick: function () {
            loadAssistance(assistance.next);
          },
        })
      );
    }
    var waiting = Array.from(assistance.items.values()).filter(function (item) {
      return item.status !== "accepted" && assistanceShown(item);
    }).length;
    setBadge("assistance-badge", waiting, "waiting");
  }

  function loadAssistance(url) {
    var org = app.org();
    var first = !url;
    return app
      .api("GET", url || "/api/assistance/?organization=" + encodeURIComponent(org) + "&page_size=50")
      .then(function (result) {
        if (org !== app.org()) return;
        if (first) assistance.items = new Map();
        result.data.forEach(function (item) {
          assistance.items.set(item.id, item);
        });
        assistance.next = result.next;
        assistance.available = true;
        renderAssistance();
      })
      .catch(function (err) {
        if (err.status === 404 && first) {
          assistance.available = false;
          renderAssistance();
        } else throw err;
      });
  }

  function acceptAssistance(item, button) {
    button.disabled = true;
    app
      .api("POST", "/api/assistance/" + item.id + "/accept/")
      .then(function (result) {
        assistance.items.set(result.data.id, result.data);
        renderAssistance();
        app.notify("Accepted: " + result.data.topic);
      })
      .catch(function (err) {
        button.disabled = false;
        app.notify(err.message, "error");
        if (err.status === 409) {
          app.api("GET", "/api/assistance/" + item.id + "/").then(function (result) {
            assistance.items.set(result.data.id, result.data);
            renderAssistance();
          });
        }
      });
  }

  function onAssistance(item, frame) {
    if (!item || !item.id || (item.organization && item.organization !== app.org())) return;
    var known = assistance.items.get(item.id);
    if (known && known.status === "accepted" && item.status !== "accepted") return; // never backwards
    assistance.items.set(item.id, item);
    renderAssistance();
    if (frame.type === "assistance_requested" && assistanceShown(item)) {
      app.notify("Assistance requested: " + item.topic + (item.description ? " — " + item.description : ""));
    }
  }
  app.on("assistance_requested", onAssistance);
  app.on("assistance_accepted", onAssistance);
  app.addLoader(function () {
    return loadAssistance(null);
  });

  // ------------------------------------------------------------------ incidents --

  var incidents = { items: new Map(), available: true };

  function renderIncidents() {
    var body = $("incidents-body");
    if (!incidents.available) return unavailable(body, "Incidents");
    clear(body);
    var open = Array.from(incidents.items.values())
      .filter(function (item) {
        return item.status !== "resolved";
      })
      .sort(function (a, b) {
        if ((b.level || 0) !== (a.level || 0)) return (b.level || 0) - (a.level || 0);
        return (b.opened_at || "") < (a.opened_at || "") ? -1 : 1;
      });
    if (!open.length) body.appendChild(el("p", { className: "muted", text: "No open incidents." }));
    var list = el("ul", { className: "cards", id: "incident-list" });
    open.forEach(function (item) {
      var triggers = (item.triggers || [])
        .map(function (t) {
          if (typeof t === "string") return t;
          return [t.service || t.servico, t.status || t.retorno].filter(Boolean).join(" ");
        })
        .join(", ");
      var actions = [];
      if (item.status === "open") {
        actions.push(
          el("button", {
            type: "button",
            text: "Acknowledge",
            "aria-label": "Acknowledge incident " + (item.rule || ""),
            onclick: function (event) {
              incidentAction(item, "acknowledge", event.currentTarget);
            },
          })
        );
      }
      actions.push(
        el("button", {
          type: "button",
          className: "primary",
          text: "Resolve",
          "aria-label": "Resolve incident " + (item.rule || ""),
          onclick: function (event) {
            incidentAction(item, "resolve", event.currentTarget);
          },
        })
      );
      list.appendChild(
        el("li", { className: "card incident", dataset: { id: item.id, status: item.status, level: String(item.level || 0) } }, [
          el("h3", {}, [
            el("span", { className: "level", dataset: { level: String(item.level || 0) }, text: "Level " + (item.level || 0) }),
            " ",
            el("span", { text: item.rule || "incident" }),
          ]),
          triggers ? el("p", { text: "Triggers: " + triggers }) : null,
          el("p", { className: "muted" }, [
            el("span", { className: "status", text: item.status === "acknowledged" ? "Acknowledged by " + (item.acknowledged_by || "?") : "Open" }),
            " · " + (item.occurrences || 0) + " occurrence(s) · opened ",
            el("time", { datetime: item.opened_at, text: app.formatTime(item.opened_at) }),
          ]),
          el("div", { className: "actions" }, actions),
        ])
      );
    });
    body.appendChild(list);
    setBadge(
      "incidents-badge",
      open.filter(function (item) {
        return item.status === "open";
      }).length,
      "open"
    );
  }

  function loadIncidents() {
    var org = app.org();
    var base = "/api/incidents/?organization=" + encodeURIComponent(org) + "&page_size=100&status=";
    return Promise.all([app.api("GET", base + "open"), app.api("GET", base + "acknowledged")])
      .then(function (results) {
        if (org !== app.org()) return;
        incidents.items = new Map();
        incidents.available = true;
        results.forEach(function (result) {
          result.data.forEach(function (item) {
            incidents.items.set(item.id, item);
          });
        });
        renderIncidents();
      })
      .catch(function (err) {
        if (err.status === 404) {
          incidents.available = false;
          renderIncidents();
        } else throw err;
      });
  }

  var INCIDENT_RANK = { open: 0, acknowledged: 1, resolved: 2 };

  function upsertIncident(item) {
    if (!item || !item.id || (item.organization && item.organization !== app.org())) return;
    var known = incidents.items.get(item.id);
    if (known && INCIDENT_RANK[known.status] > INCIDENT_RANK[item.status]) return; // forward only
    if (known && known.status === item.status && (known.level || 0) > (item.level || 0)) return;
    if (known && known.status === item.status && (known.level || 0) === (item.level || 0) &&
        (known.occurrences || 0) > (item.occurrences || 0)) return;
    incidents.items.set(item.id, item);
    renderIncidents();
  }

  function incidentAction(item, action, button) {
    button.disabled = true;
    app
      .api("POST", "/api/incidents/" + item.id + "/" + action + "/")
      .then(function (result) {
        upsertIncident(result.data);
      })
      .catch(function (err) {
        button.disabled = false;
        app.notify(err.message, "error");
      });
  }

  ["incident_opened", "incident_escalated", "incident_acknowledged", "incident_resolved"].forEach(function (type) {
    app.on(type, function (item) {
      upsertIncident(item);
      // Occurrence counts move without events of their own: fetch the current state.
      if (item && item.id && type !== "incident_resolved") {
        app.api("GET", "/api/incidents/" + item.id + "/").then(function (result) {
          upsertIncident(result.data);
        }).catch(function () {
          /* the event's copy stays */
        });
      }
      if (type === "incident_opened" || type === "incident_escalated") {
        app.notify((type === "incident_opened" ? "Incident opened: " : "Incident escalated: ") + (item.rule || "") + " (level " + (item.level || 0) + ")");
      }
    });
  });
  app.addLoader(loadIncidents);
  document.querySelector('.tab-button[data-tab="incidents"]').addEventListener("click", function () {
    if (app.org()) loadIncidents();
  });

  // ------------------------------------------------------------------- mailings --
  // Live part, from the websocket only: `mailing_progress` / `mailing_finished` carry
  // {id, status, counts: {pending, sending, sent, failed, expired, total}}. Each frame is a
  // sample; the chart plots messages by status over the time the page has watched.

  var STATUSES = ["pending", "sending", "sent", "failed", "expired"];
  var COLORS = { pending: "#8a94a6", sending: "#0b5cad", sent: "#1e7a3c", failed: "#b3261e", expired: "#b86e00" };
  var DONE = ["sent", "failed", "expired"];
  var mailings = { live: new Map() }; // id -> {id, status, counts, samples: [{t, counts}]}

  function svg(tag, attrs, children) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, String(attrs[key]));
    });
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  // Messages by status over time: one line per status, drawn as inline SVG.
  function drawChart(samples, label) {
    var width = 640, height = 240, left = 48, right = 110, top = 12, bottom = 32;
    var plotW = width - left - right, plotH = height - top - bottom;
    var t0 = samples.length ? samples[0].t : 0;
    var t1 = samples.length ? samples[samples.length - 1].t : 1;
    var span = Math.max(t1 - t0, 100);
    var max = 1;
    samples.forEach(function (sample) {
      STATUSES.forEach(function (status) {
        max = Math.max(max, sample.counts[status] || 0);
      });
    });
    function x(t) {
      return left + ((t - t0) / span) * plotW;
    }
    function y(v) {
      return top + plotH - (v / max) * plotH;
    }
    var nodes = [
      svg("title", {}, [label]),
      svg("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#5b6676" }),
      svg("line", { x1: left, y1: top, x2: left, y2: top + plotH, stroke: "#5b6676" }),
      svg("text", { x: left - 6, y: top + 4, "text-anchor": "end", "font-size": 11 }, [String(max)]),
      svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", "font-size": 11 }, ["0"]),
      svg("text", { x: left, y: height - 8, "font-size": 11 }, ["0 s"]),
      svg("text", { x: left + plotW, y: height - 8, "text-anchor": "end", "font-size": 11 }, [
        (span / 1000).toFixed(span < 1000 ? 2 : span < 10000 ? 1 : 0) + " s",
      ]),
    ];
    STATUSES.forEach(function (status, i) {
      // A step line: a count holds until the next sample changes it.
      var coords = [];
      samples.forEach(function (sample, index) {
        var value = y(sample.counts[status] || 0).toFixed(1);
        if (index > 0) coords.push(x(sample.t).toFixed(1) + "," + y(samples[index - 1].counts[status] || 0).toFixed(1));
        coords.push(x(sample.t).toFixed(1) + "," + value);
      });
      var points = coords.join(" ");
      if (samples.length === 1) points += " " + (left + plotW) + "," + y(samples[0].counts[status] || 0).toFixed(1);
      nodes.push(
        svg("polyline", { points: points, fill: "none", stroke: COLORS[status], "stroke-width": 2, "data-status": status })
      );
      var ly = top + 14 + i * 18;
      nodes.push(svg("rect", { x: left + plotW + 14, y: ly - 9, width: 10, height: 10, fill: COLORS[status] }));
      nodes.push(svg("text", { x: left + plotW + 30, y: ly, "font-size": 12 }, [status]));
    });
    return svg("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img", "aria-label": label }, nodes);
  }

  // Mailings: the list with counts (GET /api/mailings/stats/), live progress from
  // events, statistics (GET /api/mailings/<id>/stats/ + its messages, charted over time)
  // and the creation form (POST /api/mailings/) with a template preview for one client.
  mailings.items = mailings.live; // id -> {id, name, status, counts, samples, ...}
  mailings.templates = [];
  mailings.available = true;

  function mailingTitle(item) {
    return (item.name || "Mailing #" + item.id) + " — " + (item.status || "?");
  }

  function doneOf(counts) {
    return DONE.reduce(function (sum, status) {
      return sum + ((counts || {})[status] || 0);
    }, 0);
  }

  function countsTable(counts) {
    var keys = STATUSES.concat(["total"]);
    return el("table", { className: "stats" }, [
      el("caption", { className: "visually-hidden", text: "Messages by status" }),
      el("tr", {}, keys.map(function (status) {
        return el("th", { scope: "col", text: status });
      })),
      el("tr", {}, keys.map(function (status) {
        return el("td", { dataset: { status: status }, text: String((counts || {})[status] || 0) });
      })),
    ]);
  }

  function renderLiveMailings() {
    var box = $("mailings-live");
    if (!box) return;
    clear(box);
    var items = Array.from(mailings.items.values()).sort(function (a, b) {
      return b.id - a.id;
    });
    if (!items.length) {
      box.appendChild(el("p", { className: "muted", text: "No mailings yet." }));
      return;
    }
    var list = el("ul", { className: "cards", id: "mailing-live-list" });
    items.forEach(function (item) {
      var counts = item.counts || {};
      var total = counts.total || 0;
      var done = doneOf(counts);
      var progressId = "mailing-progress-" + item.id;
      var samples = item.history || item.samples;
      var children = [
        el("h3", { text: mailingTitle(item) }),
        item.start_at
          ? el("p", { className: "muted", text: "From " + app.formatTime(item.start_at) + " to " + app.formatTime(item.end_at) +
              (item.window_start ? " · daily window " + item.window_start + "–" + item.window_end : "") +
              ((item.tags || []).length ? " · tags " + item.tags.join(", ") : "") +
              ((item.operator_codes || []).length ? " · operators " + item.operator_codes.join(", ") : "") })
          : null,
        el("label", { for: progressId, text: done + " of " + total + " handled" }),
        el("progress", { id: progressId, className: "progress", max: String(Math.max(total, 1)), value: String(done) }),
      ];
      if (samples && samples.length) {
        children.push(el("div", { className: "chart" }, [drawChart(samples, "Messages of " + mailingTitle(item) + " by status over time")]));
      }
      children.push(countsTable(counts));
      if (item.stats) {
        children.push(el("p", { className: "muted", text:
          item.stats.attempts + " attempt(s)" +
          (item.stats.duration_seconds !== null && item.stats.duration_seconds !== undefined ? " · " + item.stats.duration_seconds + " s" : "") +
          (item.stats.throughput_per_second !== null && item.stats.throughput_per_second !== undefined ? " · " + item.stats.throughput_per_second + " sent/s" : "") +
          (item.historyPartial ? " · chart of the first " + item.historyCount + " messages" : "") }));
      }
      if (mailings.available && !item.stats) {
        children.push(el("div", { className: "actions" }, [
          el("button", { type: "button", text: "Statistics", "aria-label": "Statistics of " + mailingTitle(item), onclick: function (event) {
            event.currentTarget.disabled = true;
            loadMailingStats(item.id);
          } }),
        ]));
      }
      list.appendChild(
        el("li", { className: "card mailing", dataset: { id: String(item.id), status: item.status || "", done: String(done), total: String(total) } }, children)
      );
    });
    box.appendChild(list);
  }

  // Messages by status over time from the messages themselves: each one leaves `pending`
  // when it was sent (sent_at) or given up (its last attempt). Capped at 10 pages.
  function loadMailingStats(id) {
    var item = mailings.items.get(id);
    if (!item) return;
    var messages = [];
    function page(url, left) {
      return app.api("GET", url).then(function (result) {
        messages = messages.concat(result.data);
        if (result.next && left > 1) return page(result.next, left - 1);
        return !!result.next;
      });
    }
    Promise.all([
      app.api("GET", "/api/mailings/" + id + "/stats/"),
      page("/api/mailings/" + id + "/messages/?page_size=200", 10),
    ]).then(function (results) {
      var stats = results[0].data;
      var partial = results[1];
      var events = [];
      messages.forEach(function (msg) {
        var when = null;
        if (msg.status === "sent") when = msg.sent_at;
        else if (msg.status === "failed" || msg.status === "expired") {
          var last = (msg.attempts || [])[msg.attempts.length - 1];
          when = last ? last.created_at : msg.created;
        }
        if (when) events.push({ t: Date.parse(when), status: msg.status });
      });
      events.sort(function (a, b) {
        return a.t - b.t;
      });
      var total = partial ? messages.length : stats.counts.total;
      var running = { pending: total, sending: 0, sent: 0, failed: 0, expired: 0 };
      var start = Date.parse(stats.started_at || (messages[0] && messages[0].created) || "") || (events[0] ? events[0].t : Date.now());
      var history = [{ t: start, counts: Object.assign({}, running) }];
      events.forEach(function (event) {
        running.pending -= 1;
        running[event.status] += 1;
        history.push({ t: Math.max(event.t, start), counts: Object.assign({}, running) });
      });
      var target = mailings.items.get(id);
      if (!target) return;
      target.stats = stats;
      target.counts = stats.counts;
      target.history = history;
      target.historyPartial = partial;
      target.historyCount = messages.length;
      renderLiveMailings();
    }).catch(function (err) {
      app.notify("Could not load the statistics: " + err.message, "error");
      renderLiveMailings();
    });
  }

  function onMailing(data, frame) {
    if (!data || data.id === undefined || data.id === null) return;
    var item = mailings.items.get(data.id) || { id: data.id, samples: [] };
    if (item.status && item.status !== "running" && item.status !== "scheduled" && data.status === "running") return; // finished stays
    item.status = data.status || item.status;
    item.counts = data.counts || item.counts;
    if (data.name) item.name = data.name;
    item.samples = item.samples || [];
    if (item.counts) item.samples.push({ t: Date.now(), counts: item.counts });
    if (item.samples.length > 500) item.samples.splice(1, item.samples.length - 500);
    mailings.items.set(data.id, item);
    renderLiveMailings();
    if (frame.type === "mailing_finished") app.notify((item.name || "Mailing #" + item.id) + " finished.");
  }
  app.on("mailing_progress", onMailing);
  app.on("mailing_finished", onMailing);

  // ------------------------------------------------------------- the mailing form --

  var PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,49})\s*\}\}/g;
  var CLIENT_FIELDS = ["name", "phone", "operator_code", "tag", "timezone"];

  // The same rule as mailing/rendering.py: {{ identifier }}; the client's fields win
  // over the mailing's context; an unknown name renders empty.
  function renderTemplate(body, context, client) {
    var values = Object.assign({}, context);
    CLIENT_FIELDS.forEach(function (field) {
      values[field] = client && client[field] !== null && client[field] !== undefined ? String(client[field]) : "";
    });
    return String(body || "").replace(PLACEHOLDER, function (_, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? values[name] : "";
    });
  }

  function field(id, label, input, hint) {
    input.id = id;
    var children = [el("label", { for: id, text: label }), input];
    if (hint) {
      input.setAttribute("aria-describedby", id + "-hint");
      children.push(el("small", { id: id + "-hint", className: "muted", text: hint }));
    }
    children.push(el("span", { className: "form-error field-error", id: id + "-error", role: "alert" }));
    return el("div", { className: "field" }, children);
  }

  function splitList(value) {
    return value.split(/[\s,]+/).map(function (part) {
      return part.trim();
    }).filter(Boolean);
  }

  function localInput(date) {
    var pad = function (n) {
      return String(n).padStart(2, "0");
    };
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
  }

  function formValues() {
    var values = {};
    var context = {};
    document.querySelectorAll("#mailing-variables input").forEach(function (input) {
      context[input.dataset.variable] = input.value;
    });
    values.context = context;
    return values;
  }

  function selectedTemplate() {
    var id = $("mailing-template").value;
    return mailings.templates.filter(function (t) {
      return String(t.id) === id;
    })[0] || null;
  }

  function renderVariables() {
    var box = $("mailing-variables");
    clear(box);
    var template = selectedTemplate();
    $("mailing-text").disabled = !!template;
    if (!template) return;
    (template.variables || []).forEach(function (name) {
      box.appendChild(field("mailing-var-" + name, "Value of {{ " + name + " }}", el("input", { type: "text", dataset: { variable: name }, oninput: updatePreview })));
    });
  }

  var previewClients = [];
  function updatePreview() {
    var template = selectedTemplate();
    var body = template ? template.body : $("mailing-text").value;
    var client = previewClients.filter(function (c) {
      return c.uuid === $("mailing-preview-client").value;
    })[0];
    $("mailing-preview").textContent = client
      ? renderTemplate(body, formValues().context, client)
      : "Pick a client to preview the text.";
  }

  function loadPreviewClients() {
    var tags = splitList($("mailing-tags").value);
    var url = "/api/clients/?organization=" + encodeURIComponent(app.org()) + "&page_size=50" +
      (tags.length === 1 ? "&tag=" + encodeURIComponent(tags[0]) : "");
    return app.api("GET", url).then(function (result) {
      var codes = splitList($("mailing-operators").value);
      previewClients = result.data.filter(function (client) {
        return (!tags.length || tags.indexOf(client.tag) >= 0) && (!codes.length || codes.indexOf(client.operator_code) >= 0);
      });
      var select = $("mailing-preview-client");
      var keep = select.value;
      clear(select);
      select.appendChild(el("option", { value: "", text: previewClients.length ? "Choose a client…" : "No matching client on the first page" }));
      previewClients.forEach(function (client) {
        select.appendChild(el("option", { value: client.uuid, text: client.name + " (" + client.phone + ")" }));
      });
      if (keep && previewClients.some(function (c) { return c.uuid === keep; })) select.value = keep;
      else if (previewClients.length) select.value = previewClients[0].uuid;
      updatePreview();
    }).catch(function () {
      /* the preview is a help, not a requirement */
    });
  }

  function buildForm() {
    var now = new Date();
    var templateSelect = el("select", { onchange: function () { renderVariables(); updatePreview(); } }, [el("option", { value: "", text: "No template: write the text" })]);
    mailings.templates.forEach(function (template) {
      templateSelect.appendChild(el("option", { value: String(template.id), text: template.title + " (" + template.code + ")" }));
    });
    var form = el("form", { id: "mailing-form", className: "mailing-form", novalidate: true }, [
      field("mailing-name", "Name", el("input", { type: "text", maxlength: 200 })),
      field("mailing-template", "Template", templateSelect),
      el("div", { id: "mailing-variables" }),
      field("mailing-text", "Text", el("textarea", { rows: 3, maxlength: 2000, oninput: updatePreview }), "Placeholders: {{ name }}, {{ phone }}, {{ operator_code }}, {{ tag }}, {{ timezone }}."),
      field("mailing-tags", "Client tags", el("input", { type: "text", onchange: loadPreviewClients }), "Comma separated; any of them. Empty: every client."),
      field("mailing-operators", "Operator codes", el("input", { type: "text", inputmode: "numeric", onchange: loadPreviewClients }), "Comma separated, 3 digits; combined with the tags."),
      field("mailing-start", "Start", el("input", { type: "datetime-local", value: localInput(now) })),
      field("mailing-end", "End (nothing is sent after it)", el("input", { type: "datetime-local", value: localInput(new Date(now.getTime() + 24 * 3600 * 1000)) })),
      field("mailing-window-start", "Daily window from (client's local time, optional)", el("input", { type: "time" })),
      field("mailing-window-end", "Daily window until", el("input", { type: "time" })),
      el("p", {}, [el("label", {}, [el("input", { type: "checkbox", id: "mailing-promo" }), " Promotional (skips clients who opted out)"])]),
      el("fieldset", { className: "preview" }, [
        el("legend", { text: "Preview for one client" }),
        field("mailing-preview-client", "Client", el("select", { onchange: updatePreview })),
        el("p", { id: "mailing-preview", className: "preview-text", "aria-live": "polite" }),
      ]),
      el("button", { type: "submit", className: "primary", id: "mailing-submit", text: "Create mailing" }),
      el("p", { id: "mailing-form-error", className: "form-error", role: "alert" }),
    ]);
    form.addEventListener("submit", submitMailing);
    return form;
  }

  function submitMailing(event) {
    event.preventDefault();
    document.querySelectorAll("#mailing-form .field-error").forEach(function (node) {
      node.textContent = "";
    });
    $("mailing-form-error").textContent = "";
    var template = selectedTemplate();
    var start = $("mailing-start").value, end = $("mailing-end").value;
    var body = {
      organization: app.org(),
      name: $("mailing-name").value,
      start_at: start ? new Date(start).toISOString() : null,
      end_at: end ? new Date(end).toISOString() : null,
      tags: splitList($("mailing-tags").value),
      operator_codes: splitList($("mailing-operators").value),
      promo: $("mailing-promo").checked,
      context: formValues().context,
    };
    if (template) body.template = template.id;
    else body.text = $("mailing-text").value;
    if ($("mailing-window-start").value || $("mailing-window-end").value) {
      body.window_start = $("mailing-window-start").value || null;
      body.window_end = $("mailing-window-end").value || null;
    }
    var button = $("mailing-submit");
    button.disabled = true;
    app.api("POST", "/api/mailings/", body).then(function (result) {
      var item = Object.assign(mailings.items.get(result.data.id) || { samples: [] }, result.data);
      mailings.items.set(item.id, item);
      renderLiveMailings();
      app.notify("Mailing created: " + (item.name || "#" + item.id));
      $("mailing-name").value = "";
    }).catch(function (err) {
      var fields = (err.body && err.body.error && err.body.error.fields) || {};
      var map = { name: "mailing-name", text: "mailing-text", template: "mailing-template", tags: "mailing-tags",
        operator_codes: "mailing-operators", start_at: "mailing-start", end_at: "mailing-end",
        window_start: "mailing-window-start", window_end: "mailing-window-end" };
      var shown = false;
      Object.keys(fields).forEach(function (name) {
        var node = map[name] && $(map[name] + "-error");
        if (node) {
          node.textContent = [].concat(fields[name]).join(" ");
          shown = true;
        }
      });
      $("mailing-form-error").textContent = shown ? "Please correct the fields above." : err.message;
    }).then(function () {
      button.disabled = false;
    });
  }

  function renderMailingsShell() {
    var body = $("mailings-body");
    clear(body);
    body.appendChild(el("h3", { text: "Mailings" }));
    body.appendChild(el("div", { id: "mailings-live" }));
    body.appendChild(el("h3", { text: "New mailing" }));
    if (mailings.available) {
      body.appendChild(buildForm());
      loadPreviewClients();
    } else {
      body.appendChild(el("p", { className: "placeholder", text: "Creating mailings needs the mailing API, which is not on this server yet." }));
    }
    renderLiveMailings();
  }

  app.addLoader(function () {
    var org = app.org();
    var base = "?organization=" + encodeURIComponent(org);
    return Promise.all([
      app.api("GET", "/api/mailings/stats/" + base + "&page_size=20"),
      app.api("GET", "/api/templates/" + base + "&page_size=200"),
    ]).then(function (results) {
      if (org !== app.org()) return;
      mailings.available = true;
      var previous = mailings.items;
      mailings.items = new Map();
      results[0].data.forEach(function (mailing) {
        var old = previous.get(mailing.id);
        mailing.samples = old ? old.samples : [];
        mailings.items.set(mailing.id, mailing);
      });
      mailings.templates = results[1].data;
      renderMailingsShell();
    }).catch(function (err) {
      if (err.status !== 404) throw err;
      mailings.available = false;
      mailings.items = new Map();
      renderMailingsShell();
    });
  });
})();
