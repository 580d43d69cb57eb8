/* DOM helpers. User text reaches the DOM only through textContent and attributes
 * (el()), never innerHTML: that is the console's whole defence against markup in
 * client names and messages. */

export function $(id) {
  return document.getElementById(id);
}

export function el(tag, props, children) {
  const node = document.createElement(tag);
  if (props) {
    for (const key of Object.keys(props)) {
      const value = props[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  for (const child of children || []) {
    if (child === null || child === undefined) continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

// Only same-site paths or http(s) URLs become links (never javascript: and friends).
export function safeUrl(url) {
  if (typeof url !== "string") return null;
  if (url.charAt(0) === "/" && url.charAt(1) !== "/") return url;
  try {
    const parsed = new URL(url, location.href);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch (e) {
    return null;
  }
}

export function ts(iso) {
  const value = Date.parse(iso || "");
  return isNaN(value) ? 0 : value;
}

// Formatters built once: toLocale*String() builds one per call, which dominated the
// time to draw a long inbox.
// In the page's language (<html lang>, the one Django chose), not the browser's, and in
// the time zone the agent saved (the page's config; "" or unknown: the browser's).
const LOCALE = document.documentElement.lang || undefined;
export const TIME_ZONE = savedTimeZone();
const TIME = new Intl.DateTimeFormat(LOCALE, { hour: "2-digit", minute: "2-digit", timeZone: TIME_ZONE });
const DAY = new Intl.DateTimeFormat(LOCALE, { month: "short", day: "numeric", timeZone: TIME_ZONE });
const DATE_TIME = new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short", timeZone: TIME_ZONE });
// The calendar day in that zone, to tell "today" from other days.
const DAY_KEY = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit", timeZone: TIME_ZONE });
let today = "";
let todayUntil = 0;

function savedTimeZone() {
  try {
    const node = document.getElementById("console-config");
    const zone = node ? JSON.parse(node.textContent).time_zone : "";
    if (!zone) return undefined;
    new Intl.DateTimeFormat("en", { timeZone: zone }); // throws for a zone this browser lacks
    return zone;
  } catch (e) {
    return undefined;
  }
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const ms = date.getTime();
  if (isNaN(ms)) return "";
  const now = Date.now();
  if (now >= todayUntil) {
    todayUntil = now + 60000; // the zone's midnight is not the browser's: look again each minute
    today = DAY_KEY.format(now);
  }
  const time = TIME.format(date);
  if (DAY_KEY.format(date) === today) return time;
  return DAY.format(date) + " " + time;
}

// A <input type="datetime-local"> value ("2030-01-02T09:00") read and written as a wall
// clock in the same zone (the browser would read it in its own).
const WALL = new Intl.DateTimeFormat("en-CA", {
  year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: TIME_ZONE,
});

function wallParts(ms) {
  const parts = {};
  for (const part of WALL.formatToParts(new Date(ms))) parts[part.type] = part.value;
  return parts;
}

export function toWallClock(date) {
  const p = wallParts(date.getTime());
  return p.year + "-" + p.month + "-" + p.day + "T" + p.hour + ":" + p.minute;
}

export function fromWallClock(value) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value || "");
  if (!match) return null;
  const [y, mo, d, h, mi] = match.slice(1).map(Number);
  const wanted = Date.UTC(y, mo - 1, d, h, mi);
  const offsetAt = (ms) => {
    const p = wallParts(ms);
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute) - Math.floor(ms / 60000) * 60000;
  };
  // The zone's offset at the guess, then again at the result (a DST change between them).
  let ms = wanted - offsetAt(wanted);
  ms = wanted - offsetAt(ms);
  return new Date(ms);
}

// A date and time in full (a snooze's end), in the same zone.
export function formatDateTime(iso) {
  const date = new Date(iso || "");
  return isNaN(date.getTime()) ? "" : DATE_TIME.format(date);
}

let noticeTimer = null;
export function notify(text, kind) {
  const box = $("notice");
  box.textContent = text;
  box.dataset.kind = kind || "info";
  box.classList.add("visible");
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    box.classList.remove("visible");
    box.textContent = "";
  }, 4000);
}

export function fatal(text) {
  const box = $("fatal");
  box.textContent = text;
  box.hidden = !text;
}

// Polite announcements for screen readers; a fresh text each time, so the same words
// twice are announced twice.
export function announce(text) {
  const region = $("announcer");
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

export function setBadge(node, count, label) {
  node.hidden = !count;
  clear(node);
  if (count) {
    node.appendChild(document.createTextNode(String(count)));
    node.appendChild(el("span", { className: "visually-hidden", text: " " + label }));
  }
}
