/* Attention: opt-in desktop notifications and a sound (per agent, saved with
 * GET/PATCH /api/me/preferences/) for a new conversation, a mention in a note, and a
 * client writing in a conversation assigned to this agent. The tab title carries this
 * agent's unread count (inbox.js). */
import { api } from "./api.js";
import { listen, on, state } from "./core.js";
import { $ } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { clientName, isMe, people, userName } from "./people.js";
import { openHelpDesk } from "./nav.js";

const prefs = { language: "", time_zone: "", notify_desktop: false, notify_sound: false, loaded: false, remote: true };
const fired = []; // what was signalled, for tests (consoleDebug.alerts())
let audio = null;

// The console's language: saved per agent, the page reloads in it ("" follows the
// browser's Accept-Language). The languages are named in their own language.
const LANGUAGES = [["en", "English"], ["ru", "Русский"], ["pt-br", "Português (Brasil)"]];

function languagePicker() {
  const row = $("pref-language-row");
  const label = document.createElement("label");
  label.htmlFor = "pref-language";
  label.textContent = t("Language") + " ";
  const select = document.createElement("select");
  select.id = "pref-language";
  for (const [code, name] of [["", t("The browser's language")], ...LANGUAGES]) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    select.append(option);
  }
  select.addEventListener("change", () => {
    savePreferences({ language: select.value }).then(() => location.reload());
  });
  row.replaceChildren(label, select);
  timeZonePicker(row);
}

// The time zone the console's times read in: saved per agent, the page reloads in it
// ("" follows the browser's; the server then reads the `tz` cookie below).
function timeZonePicker(languageRow) {
  const row = document.createElement("p");
  row.id = "pref-time-zone-row";
  const label = document.createElement("label");
  label.htmlFor = "pref-time-zone";
  label.textContent = t("Time zone") + " ";
  const select = document.createElement("select");
  select.id = "pref-time-zone";
  select.style.maxWidth = "100%"; // a long zone name must not widen (or stick out of) the settings box
  const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const saved = prefs.time_zone || "";
  const names = zones.includes("UTC") ? zones : ["UTC", ...zones];
  if (saved && !names.includes(saved)) names.push(saved);
  for (const [code, name] of [["", fmt(t("The browser's time zone (%(zone)s)"), { zone: browser })], ...names.map((z) => [z, z])]) {
    const option = document.createElement("option");
    option.value = code;
    option.textContent = name;
    select.append(option);
  }
  select.addEventListener("change", () => {
    savePreferences({ time_zone: select.value }).then(() => location.reload());
  });
  row.append(label, select);
  languageRow.after(row);
}

// The server renders times (the admin's) in the viewer's zone: it reads this cookie.
document.cookie = "tz=" + encodeURIComponent(Intl.DateTimeFormat().resolvedOptions().timeZone) + "; path=/; SameSite=Lax";

function showPrefs() {
  if (!$("pref-language")) languagePicker();
  $("pref-language").value = prefs.language || "";
  $("pref-time-zone").value = prefs.time_zone || "";
  $("pref-desktop").checked = !!prefs.notify_desktop;
  $("pref-sound").checked = !!prefs.notify_sound;
  const denied = typeof Notification !== "undefined" && Notification.permission === "denied";
  $("pref-desktop-note").textContent = denied ? t("The browser blocks notifications for this site.") : "";
}

export function loadPreferences() {
  return api("GET", "/api/me/preferences/")
    .then((result) => Object.assign(prefs, result.data || {}, { loaded: true }))
    .catch(() => {
      prefs.remote = false; // no endpoint: kept in this browser only
      try {
        Object.assign(prefs, JSON.parse(localStorage.getItem("console.prefs") || "{}"));
      } catch (e) {
        /* private mode */
      }
    })
    .then(showPrefs);
}

function savePreferences(change) {
  Object.assign(prefs, change);
  if (!prefs.remote) {
    try {
      localStorage.setItem("console.prefs", JSON.stringify({ notify_desktop: prefs.notify_desktop, notify_sound: prefs.notify_sound }));
    } catch (e) {
      /* private mode */
    }
    return Promise.resolve();
  }
  // Only the fields this change sent come back into the page: an answer to an earlier
  // change must not undo a later click.
  return api("PATCH", "/api/me/preferences/", change)
    .then((result) => {
      for (const key of Object.keys(change)) if (result.data && key in result.data) prefs[key] = result.data[key];
    })
    .catch((err) => {
      $("pref-desktop-note").textContent = fmt(t("Not saved: %(error)s"), { error: err.message });
    })
    .then(showPrefs);
}

$("pref-desktop").addEventListener("change", (event) => {
  const on = event.target.checked;
  if (on && typeof Notification !== "undefined" && Notification.permission === "default") {
    Notification.requestPermission().then(() => {
      savePreferences({ notify_desktop: Notification.permission === "granted" });
    });
    return;
  }
  savePreferences({ notify_desktop: on });
});
$("pref-sound").addEventListener("change", (event) => {
  if (event.target.checked) unlockAudio(); // a click is what lets a page play sound
  savePreferences({ notify_sound: event.target.checked });
});

function unlockAudio() {
  try {
    audio = audio || new AudioContext();
    if (audio.state === "suspended") audio.resume();
  } catch (e) {
    audio = null;
  }
}

function beep() {
  if (!audio) unlockAudio();
  if (!audio) return;
  try {
    playTone();
  } catch (e) {
    /* no audio device: the desktop notification (if on) still says it */
  }
}

function playTone() {
  const osc = audio.createOscillator();
  const gain = audio.createGain();
  osc.frequency.value = 880;
  gain.gain.setValueAtTime(0.15, audio.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.25);
  osc.connect(gain).connect(audio.destination);
  osc.start();
  osc.stop(audio.currentTime + 0.25);
}

// A mention is always worth a notification; the rest only when the agent is not
// already looking at that conversation.
function signal(kind, title, body, deskUuid) {
  const record = { kind, title, body, desk: deskUuid, desktop: false, sound: false };
  const looking = document.visibilityState !== "hidden" && document.hasFocus() && deskUuid === state.openDesk;
  if (prefs.notify_desktop && typeof Notification !== "undefined" && Notification.permission === "granted" &&
      (kind === "mention" || !looking)) {
    const note = new Notification(title, { body, tag: deskUuid || kind });
    note.onclick = () => {
      window.focus();
      if (deskUuid) openHelpDesk(deskUuid);
      note.close();
    };
    record.desktop = true;
  }
  if (prefs.notify_sound) {
    beep();
    record.sound = true;
  }
  if (record.desktop || record.sound) fired.push(record); // opt-in: nothing is signalled otherwise
}

const RECENT_MS = 5 * 60 * 1000;
listen("new-desk", (desk) => {
  const created = Date.parse(desk.created_at || "");
  if (!isNaN(created) && Date.now() - created > RECENT_MS) return; // an old one coming into view
  signal("conversation", t("New conversation"), clientName(desk.client), desk.uuid);
});

listen("client-message", (msg) => {
  const desk = state.desks.get(msg.help_desk);
  if (!desk || !isMe(desk.assignee)) return;
  signal("message", fmt(t("%(name)s wrote"), { name: clientName(desk.client) }), msg.message || t("Attachment"), desk.uuid);
});

on("new_note", (note) => {
  if (!note || isMe(note.author)) return;
  const mentioned = (note.mentions || []).some((id) => people.me && String(id) === String(people.me.id));
  if (!mentioned) return;
  signal("mention", fmt(t("%(name)s mentioned you"), { name: userName(note.author) || t("An agent") }), note.text, note.help_desk);
});

export const attentionDebug = {
  alerts: () => fired.slice(),
  preferences: () => Object.assign({}, prefs),
};
