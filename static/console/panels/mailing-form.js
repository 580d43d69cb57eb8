/* The New mailing form: name, template (its declared variables get one input each) or
 * text, the filter (client tags, operator codes), start and end (local time, sent as
 * ISO), an optional daily window, promotional. The preview of a template is the
 * server's (POST /api/templates/<id>/preview/: the real client, its language's variant,
 * the code's context provider, exactly as the mailing renders it); a plain text (no
 * template, no endpoint) is substituted here with the same rule as mailing/rendering.py.
 * Field errors from POST /api/mailings/ are shown next to their fields. */
import { api, orgQuery } from "../api.js";
import { emit, state } from "../core.js";
import { $, clear, el, notify } from "../dom.js";
import { fmt, t } from "../i18n.js";

export const mailingForm = { templates: [], previewClients: [] };
const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,49})\s*\}\}/g;
const CLIENT_FIELDS = ["name", "phone", "operator_code", "tag", "timezone"];

// The same rule as mailing/rendering.py: {{ identifier }}; the client's fields win
// over the mailing's context; an unknown name renders empty.
function renderTemplate(body, context, client) {
  const values = Object.assign({}, context);
  for (const name of CLIENT_FIELDS) {
    values[name] = client && client[name] !== null && client[name] !== undefined ? String(client[name]) : "";
  }
  return String(body || "").replace(PLACEHOLDER, (_, name) => (Object.prototype.hasOwnProperty.call(values, name) ? values[name] : ""));
}

function field(id, label, input, hint) {
  input.id = id;
  const children = [el("label", { for: id, text: label }), input];
  if (hint) {
    input.setAttribute("aria-describedby", id + "-hint");
    children.push(el("small", { id: id + "-hint", className: "muted", text: hint }));
  }
  children.push(el("span", { className: "form-error field-error", id: id + "-error", role: "alert" }));
  return el("div", { className: "field" }, children);
}

function splitList(value) {
  return value.split(/[\s,]+/).map((part) => part.trim()).filter(Boolean);
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + "T" + pad(date.getHours()) + ":" + pad(date.getMinutes());
}

function contextValues() {
  const context = {};
  document.querySelectorAll("#mailing-variables input").forEach((input) => {
    context[input.dataset.variable] = input.value;
  });
  return context;
}

function selectedTemplate() {
  const id = $("mailing-template").value;
  return mailingForm.templates.find((tpl) => String(tpl.id) === id) || null;
}

function renderVariables() {
  const box = $("mailing-variables");
  clear(box);
  const template = selectedTemplate();
  $("mailing-text").disabled = !!template;
  if (!template) return;
  for (const name of template.variables || []) {
    box.appendChild(field("mailing-var-" + name, fmt(t("Value of {{ %(name)s }}"), { name }), el("input", { type: "text", dataset: { variable: name }, oninput: updatePreview })));
  }
}

let previewSeq = 0;
let previewTimer = null;

function updatePreview() {
  const template = selectedTemplate();
  const client = mailingForm.previewClients.find((c) => c.uuid === $("mailing-preview-client").value);
  const out = $("mailing-preview");
  clearTimeout(previewTimer);
  const seq = ++previewSeq;
  if (!client) {
    out.textContent = t("Pick a client to preview the text.");
    return;
  }
  if (!template) {
    out.textContent = renderTemplate($("mailing-text").value, contextValues(), client);
    return;
  }
  // One request once the typing pauses; only the latest answer is shown.
  previewTimer = setTimeout(() => {
    api("POST", "/api/templates/" + template.id + "/preview/", { client: client.id, context: contextValues() })
      .then((result) => {
        if (seq !== previewSeq) return;
        out.dataset.source = "server";
        out.textContent = (result.data.subject ? result.data.subject + "\n\n" : "") + result.data.text;
      })
      .catch((err) => {
        if (seq === previewSeq) out.textContent = err.message;
      });
  }, 250);
}

export function loadPreviewClients() {
  const tags = splitList($("mailing-tags").value);
  const url = "/api/clients/?" + orgQuery(state.org) + "&page_size=50" + (tags.length === 1 ? "&tag=" + encodeURIComponent(tags[0]) : "");
  return api("GET", url)
    .then((result) => {
      const codes = splitList($("mailing-operators").value);
      mailingForm.previewClients = result.data.filter((client) => (!tags.length || tags.includes(client.tag)) && (!codes.length || codes.includes(client.operator_code)));
      const select = $("mailing-preview-client");
      const keep = select.value;
      clear(select);
      select.appendChild(el("option", { value: "", text: mailingForm.previewClients.length ? t("Choose a client…") : t("No matching client on the first page") }));
      for (const client of mailingForm.previewClients) {
        select.appendChild(el("option", { value: client.uuid, text: client.name + (client.phone ? " (" + client.phone + ")" : "") }));
      }
      if (keep && mailingForm.previewClients.some((c) => c.uuid === keep)) select.value = keep;
      else if (mailingForm.previewClients.length) select.value = mailingForm.previewClients[0].uuid;
      updatePreview();
    })
    .catch(() => {
      /* the preview is a help, not a requirement */
    });
}

export function buildForm() {
  const now = new Date();
  const templateSelect = el("select", { onchange: () => { renderVariables(); updatePreview(); } }, [el("option", { value: "", text: t("No template: write the text") })]);
  for (const template of mailingForm.templates) {
    templateSelect.appendChild(el("option", { value: String(template.id), text: template.title + " (" + template.code + ")" }));
  }
  const form = el("form", { id: "mailing-form", className: "mailing-form", novalidate: true }, [
    field("mailing-name", t("Name"), el("input", { type: "text", maxlength: 200 })),
    field("mailing-template", t("Template"), templateSelect),
    el("div", { id: "mailing-variables" }),
    field("mailing-text", t("Text"), el("textarea", { rows: 3, maxlength: 2000, oninput: updatePreview }), t("Placeholders: {{ name }}, {{ phone }}, {{ operator_code }}, {{ tag }}, {{ timezone }}.")),
    field("mailing-tags", t("Client tags"), el("input", { type: "text", onchange: loadPreviewClients }), t("Comma separated; any of them. Empty: every client.")),
    field("mailing-operators", t("Operator codes"), el("input", { type: "text", inputmode: "numeric", onchange: loadPreviewClients }), t("Comma separated, 3 digits; combined with the tags.")),
    field("mailing-start", t("Start"), el("input", { type: "datetime-local", value: localInput(now) })),
    field("mailing-end", t("End (nothing is sent after it)"), el("input", { type: "datetime-local", value: localInput(new Date(now.getTime() + 24 * 3600 * 1000)) })),
    field("mailing-window-start", t("Daily window from (client's local time, optional)"), el("input", { type: "time" })),
    field("mailing-window-end", t("Daily window until"), el("input", { type: "time" })),
    el("p", {}, [el("label", {}, [el("input", { type: "checkbox", id: "mailing-promo" }), " " + t("Promotional (skips clients who opted out)")])]),
    el("fieldset", { className: "preview" }, [
      el("legend", { text: t("Preview for one client") }),
      field("mailing-preview-client", t("Client"), el("select", { onchange: updatePreview })),
      el("p", { id: "mailing-preview", className: "preview-text", "aria-live": "polite" }),
    ]),
    el("button", { type: "submit", className: "primary", id: "mailing-submit", text: t("Create mailing") }),
    el("p", { id: "mailing-form-error", className: "form-error", role: "alert" }),
  ]);
  form.addEventListener("submit", submit);
  return form;
}

const FIELD_IDS = {
  name: "mailing-name", text: "mailing-text", template: "mailing-template", tags: "mailing-tags",
  operator_codes: "mailing-operators", start_at: "mailing-start", end_at: "mailing-end",
  window_start: "mailing-window-start", window_end: "mailing-window-end",
};

function submit(event) {
  event.preventDefault();
  document.querySelectorAll("#mailing-form .field-error").forEach((node) => (node.textContent = ""));
  $("mailing-form-error").textContent = "";
  const template = selectedTemplate();
  const start = $("mailing-start").value;
  const end = $("mailing-end").value;
  const body = {
    organization: state.org,
    name: $("mailing-name").value,
    start_at: start ? new Date(start).toISOString() : null,
    end_at: end ? new Date(end).toISOString() : null,
    tags: splitList($("mailing-tags").value),
    operator_codes: splitList($("mailing-operators").value),
    promo: $("mailing-promo").checked,
    context: contextValues(),
  };
  if (template) body.template = template.id;
  else body.text = $("mailing-text").value;
  if ($("mailing-window-start").value || $("mailing-window-end").value) {
    body.window_start = $("mailing-window-start").value || null;
    body.window_end = $("mailing-window-end").value || null;
  }
  const button = $("mailing-submit");
  button.disabled = true;
  api("POST", "/api/mailings/", body)
    .then((result) => {
      emit("mailing-created", result.data);
      notify(fmt(t("Mailing created: %(name)s"), { name: result.data.name || "#" + result.data.id }));
      $("mailing-name").value = "";
    })
    .catch((err) => {
      let shown = false;
      for (const name of Object.keys(err.fields || {})) {
        const node = FIELD_IDS[name] && $(FIELD_IDS[name] + "-error");
        if (node) {
          node.textContent = [].concat(err.fields[name]).join(" ");
          shown = true;
        }
      }
      $("mailing-form-error").textContent = shown ? t("Please correct the fields above.") : err.message;
    })
    .then(() => {
      button.disabled = false;
    });
}
