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
    var span = Math.max(t1 - t0, 1000);
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
        (span / 1000).toFixed(span < 10000 ? 1 : 0) + " s",
      ]),
    ];
    STATUSES.forEach(function (status, i) {
      var points = samples
        .map(function (sample) {
          return x(sample.t).toFixed(1) + "," + y(sample.counts[status] || 0).toFixed(1);
        })
        .join(" ");
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

  function renderLiveMailings() {
    var box = $("mailings-live");
    clear(box);
    var items = Array.from(mailings.live.values()).sort(function (a, b) {
      return b.id - a.id;
    });
    if (!items.length) {
      box.appendChild(el("p", { className: "muted", text: "No mailing is sending right now." }));
      return;
    }
    var list = el("ul", { className: "cards", id: "mailing-live-list" });
    items.forEach(function (item) {
      var counts = item.counts || {};
      var total = counts.total || 0;
      var done = DONE.reduce(function (sum, status) {
        return sum + (counts[status] || 0);
      }, 0);
      var title = (item.name || "Mailing #" + item.id) + (item.status === "running" ? "" : " — " + item.status);
      var progressId = "mailing-progress-" + item.id;
      var table = el("table", { className: "stats" }, [
        el("caption", { className: "visually-hidden", text: "Messages by status" }),
        el("tr", {}, STATUSES.concat(["total"]).map(function (status) {
          return el("th", { scope: "col", text: status });
        })),
        el("tr", {}, STATUSES.concat(["total"]).map(function (status) {
          return el("td", { dataset: { status: status }, text: String(counts[status] || 0) });
        })),
      ]);
      list.appendChild(
        el("li", { className: "card mailing", dataset: { id: String(item.id), status: item.status, done: String(done), total: String(total) } }, [
          el("h3", { text: title }),
          el("label", { for: progressId, text: done + " of " + total + " handled" }),
          el("progress", { id: progressId, className: "progress", max: String(Math.max(total, 1)), value: String(done) }),
          el("div", { className: "chart" }, [drawChart(item.samples, "Messages of " + title + " by status over time")]),
          table,
        ])
      );
    });
    box.appendChild(list);
  }

  function onMailing(data, frame) {
    if (!data || data.id === undefined || data.id === null) return;
    var item = mailings.live.get(data.id) || { id: data.id, samples: [] };
    if (item.status && item.status !== "running" && data.status === "running") return; // finished stays
    item.status = data.status || item.status;
    item.counts = data.counts || item.counts;
    if (data.name) item.name = data.name;
    if (item.counts) item.samples.push({ t: Date.now(), counts: item.counts });
    if (item.samples.length > 500) item.samples.splice(1, item.samples.length - 500);
    mailings.live.set(data.id, item);
    renderLiveMailings();
    if (frame.type === "mailing_finished") app.notify((item.name || "Mailing #" + item.id) + " finished.");
  }
  app.on("mailing_progress", onMailing);
  app.on("mailing_finished", onMailing);

  function renderMailingsShell() {
    var body = $("mailings-body");
    if ($("mailings-live")) return;
    clear(body);
    body.appendChild(el("h3", { text: "Sending now" }));
    body.appendChild(el("div", { id: "mailings-live", "aria-live": "off" }));
    body.appendChild(el("h3", { text: "New mailing" }));
    body.appendChild(
      el("p", {
        className: "placeholder",
        id: "mailing-form-placeholder",
        text: "Creating mailings (filter, window, template preview) and past statistics need the mailing API, which is not on this server yet.",
      })
    );
    renderLiveMailings();
  }
  app.addLoader(function () {
    // A new organization or a resync: progress samples from before are not comparable.
    mailings.live = new Map();
    renderMailingsShell();
    renderLiveMailings();
  });
})();
