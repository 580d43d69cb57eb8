/* The website inbox form (organization admins): name, allowed origins (one per line),
 * greeting, away message, the widget's default language, the time zone and business
 * hours (any number of day + from/until rows; none: always open), and the pre-chat
 * fields. It only builds the form and reads it back; web-inboxes.js sends it and shows the
 * API's field errors beside their fields (showFieldErrors). */
import { $, clear, el } from "../dom.js";
import { t } from "../i18n.js";

// Named in their own language, as the console's language picker names them.
const LANGUAGES = [["en", "English"], ["ru", "Русский"], ["pt-br", "Português (Brasil)"]];
const PRECHAT = ["name", "email", "phone"];
// The API's fields -> the element whose error span (id + "-error") shows their errors.
const FIELD_IDS = {
  name: "wi-name",
  allowed_origins: "wi-origins",
  greeting: "wi-greeting",
  away_message: "wi-away",
  language: "wi-language",
  timezone: "wi-timezone",
  business_hours: "wi-hours",
  prechat_name: "wi-prechat-name",
  prechat_email: "wi-prechat-email",
  prechat_phone: "wi-prechat-phone",
};

export function languageName(code) {
  const found = LANGUAGES.find(([value]) => value === code);
  return found ? found[1] : code;
}

function weekdays() {
  return [t("Monday"), t("Tuesday"), t("Wednesday"), t("Thursday"), t("Friday"), t("Saturday"), t("Sunday")];
}

function field(id, label, input, hint) {
  input.id = id;
  const described = [id + "-error"];
  const children = [el("label", { for: id, text: label }), input];
  if (hint) {
    described.unshift(id + "-hint");
    children.push(el("small", { id: id + "-hint", className: "muted", text: hint }));
  }
  input.setAttribute("aria-describedby", described.join(" "));
  children.push(el("span", { className: "form-error field-error", id: id + "-error" }));
  return el("div", { className: "field" }, children);
}

function choiceSelect(options, value) {
  const select = el("select", {}, options.map(([code, name]) => el("option", { value: code, text: name })));
  select.value = value;
  return select;
}

function hoursRow(item) {
  const days = weekdays();
  const day = choiceSelect(days.map((name, i) => [String(i), name]), String(item ? item.weekday : 0));
  day.className = "wi-day";
  const start = el("input", { type: "time", className: "wi-start", value: item ? item.start : "09:00" });
  const end = el("input", { type: "time", className: "wi-end", value: item ? item.end : "18:00" });
  const row = el("li", { className: "wi-hours-row" }, [
    el("label", {}, [t("Day") + " ", day]),
    el("label", {}, [t("from") + " ", start]),
    el("label", {}, [t("until") + " ", end]),
  ]);
  row.appendChild(el("button", { type: "button", text: t("Remove"), "aria-label": t("Remove these hours"), onclick: () => row.remove() }));
  return row;
}

// Every IANA zone the browser knows, offered while typing (the server checks the name).
function zoneList() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  return el("datalist", { id: "wi-timezones" }, ["UTC", ...zones].map((zone) => el("option", { value: zone })));
}

// `inbox`: the inbox to edit, or null for a new one. `onSubmit(body)` gets what to send.
export function inboxForm(inbox, onSubmit, onCancel) {
  const data = inbox || { name: "", allowed_origins: [], greeting: "", away_message: "", language: "en", timezone: "UTC", business_hours: [] };
  const levels = [["off", t("Do not ask")], ["optional", t("Optional")], ["required", t("Required")]];
  const hours = el("ul", { className: "wi-hours-list" }, (data.business_hours || []).map(hoursRow));
  const prechat = PRECHAT.map((name) => {
    const labels = { name: t("Ask for the name"), email: t("Ask for the email"), phone: t("Ask for the phone") };
    return field("wi-prechat-" + name, labels[name], choiceSelect(levels, data["prechat_" + name] || "off"));
  });
  const form = el("form", { id: "wi-form", className: "wi-form", novalidate: true, "aria-labelledby": "wi-form-title" }, [
    el("h3", { id: "wi-form-title", text: inbox ? t("Edit website inbox") : t("New website inbox") }),
    field("wi-name", t("Name"), el("input", { type: "text", maxlength: 200, value: data.name, required: true })),
    field("wi-origins", t("Allowed origins"), el("textarea", { rows: 3, text: (data.allowed_origins || []).join("\n") }), t("One per line, as the browser sends it: https://shop.example.com")),
    field("wi-greeting", t("Greeting"), el("textarea", { rows: 2, maxlength: 500, text: data.greeting })),
    field("wi-away", t("Away message"), el("textarea", { rows: 2, maxlength: 500, text: data.away_message }), t("Shown outside business hours or when nobody is available.")),
    field("wi-language", t("Default language"), choiceSelect(LANGUAGES, data.language || "en"), t("A visitor gets their browser's language when the widget speaks it, else this one.")),
    field("wi-timezone", t("Time zone of the business hours"), el("input", { type: "text", list: "wi-timezones", maxlength: 64, value: data.timezone || "UTC", autocomplete: "off" })),
    zoneList(),
    el("fieldset", { className: "wi-hours", id: "wi-hours", "aria-describedby": "wi-hours-hint wi-hours-error" }, [
      el("legend", { text: t("Business hours") }),
      el("small", { id: "wi-hours-hint", className: "muted", text: t("None: always open.") }),
      hours,
      el("button", { type: "button", id: "wi-hours-add", text: t("Add hours"), onclick: () => hours.appendChild(hoursRow(null)) }),
      el("span", { className: "form-error field-error", id: "wi-hours-error" }),
    ]),
    el("fieldset", { className: "wi-prechat" }, [el("legend", { text: t("Before the chat") }), ...prechat]),
    el("div", { className: "actions" }, [
      el("button", { type: "submit", className: "primary", id: "wi-save", text: inbox ? t("Save") : t("Create inbox") }),
      el("button", { type: "button", text: t("Cancel"), onclick: onCancel }),
    ]),
    el("p", { id: "wi-form-error", className: "form-error", role: "alert" }),
  ]);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSubmit(readForm(form));
  });
  return form;
}

function readForm(form) {
  const body = {
    name: $("wi-name").value.trim(),
    allowed_origins: $("wi-origins").value.split(/[\s,]+/).map((o) => o.trim()).filter(Boolean),
    greeting: $("wi-greeting").value,
    away_message: $("wi-away").value,
    language: $("wi-language").value,
    timezone: $("wi-timezone").value.trim(),
    business_hours: Array.from(form.querySelectorAll(".wi-hours-row")).map((row) => ({
      weekday: Number(row.querySelector(".wi-day").value),
      start: row.querySelector(".wi-start").value,
      end: row.querySelector(".wi-end").value,
    })),
  };
  for (const name of PRECHAT) body["prechat_" + name] = $("wi-prechat-" + name).value;
  return body;
}

// DRF's errors may nest (a list's items by index): every message, flat.
function messages(value) {
  if (value === null || value === undefined) return [];
  if (typeof value === "string") return [value];
  if (Array.isArray(value)) return value.flatMap(messages);
  return Object.values(value).flatMap(messages);
}

export function clearFieldErrors(form) {
  form.querySelectorAll(".field-error").forEach((node) => clear(node));
  form.querySelectorAll("[aria-invalid]").forEach((node) => node.removeAttribute("aria-invalid"));
  $("wi-form-error").textContent = "";
}

// The API's field errors beside their fields; true when at least one had a place.
export function showFieldErrors(fields) {
  let shown = false;
  for (const name of Object.keys(fields || {})) {
    const id = FIELD_IDS[name];
    const node = id && $(id + "-error");
    if (!node) continue;
    node.textContent = messages(fields[name]).join(" ");
    $(id).setAttribute("aria-invalid", "true");
    shown = true;
  }
  return shown;
}
