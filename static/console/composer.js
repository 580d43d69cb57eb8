/* The composer under the conversation: a reply to the client, or (toggle "Reply / Note")
 * a private note only agents see. Enter sends, Shift+Enter is a new line; one send at a
 * time (requestSubmit() ignores the disabled button, so a second Enter before the first
 * answer would otherwise post the same text again). */
import { api } from "./api.js";
import { listen, state } from "./core.js";
import { $ } from "./dom.js";
import { fmt, t } from "./i18n.js";
import { renameOwn, upsertMessage, upsertNote } from "./conversation.js";
import { ownMessages, upsertDesk } from "./inbox.js";
import { send } from "./realtime.js";

const composer = { mode: "reply", inFlight: false, lastTyping: 0 };

export function setMode(mode) {
  composer.mode = mode;
  const note = mode === "note";
  $("mode-reply").setAttribute("aria-pressed", String(!note));
  $("mode-note").setAttribute("aria-pressed", String(note));
  $("reply-form").classList.toggle("note-mode", note);
  $("reply-label").textContent = note ? t("Private note") : t("Reply");
  $("reply-text").placeholder = note
    ? t("A note for agents only; @username mentions a colleague")
    : t("Type a reply (Enter sends, Shift+Enter for a new line, / for canned replies)");
  $("reply-file-row").hidden = note;
  $("reply-send").textContent = note ? t("Add note") : t("Send");
  $("reply-error").textContent = "";
}

$("mode-reply").addEventListener("click", () => {
  setMode("reply");
  $("reply-text").focus();
});
$("mode-note").addEventListener("click", () => {
  setMode("note");
  $("reply-text").focus();
});
listen("desk-opened", () => setMode("reply"));

$("reply-text").addEventListener("input", () => {
  const now = Date.now();
  if (composer.mode === "reply" && state.openDesk && now - composer.lastTyping > 3000) {
    composer.lastTyping = now;
    send({ type: "typing", help_desk: state.openDesk });
  }
});
$("reply-text").addEventListener("keydown", (event) => {
  if (event.defaultPrevented) return; // the canned-reply picker took it
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("reply-form").requestSubmit();
  }
});

function settle() {
  composer.inFlight = false;
  $("reply-send").disabled = false;
  $("reply-text").removeAttribute("aria-busy");
  $("reply-text").focus();
}

function sendNote(text) {
  return api("POST", "/api/help-desks/" + state.openDesk + "/notes/", { text }).then((result) => {
    $("reply-text").value = "";
    upsertNote(result.data, { own: true });
  });
}

function sendReply(text, file) {
  const form = new FormData();
  form.append("help_desk", state.openDesk);
  form.append("message", text);
  if (file) form.append("file", file);
  return api("POST", "/api/send-message/", form).then((result) => {
    $("reply-text").value = "";
    $("reply-file").value = "";
    const msg = result.data;
    if (msg && msg.uuid) {
      ownMessages.add(msg.uuid);
      renameOwn(msg); // the new_message event may have drawn it first, as "Agent"
      const desk = state.desks.get(msg.help_desk);
      if (desk && desk.last_message && desk.last_message.uuid === msg.uuid) upsertDesk(desk);
    }
    upsertMessage(msg, { own: true, rest: true });
  });
}

$("reply-form").addEventListener("submit", (event) => {
  event.preventDefault();
  if (composer.inFlight || !state.openDesk) return;
  const text = $("reply-text").value;
  const fileInput = $("reply-file");
  const file = composer.mode === "reply" && fileInput.files && fileInput.files[0];
  if (!text.trim() && !file) {
    $("reply-error").textContent = composer.mode === "note" ? t("Write the note first.") : t("Type a message or attach a file.");
    return;
  }
  composer.inFlight = true;
  $("reply-send").disabled = true;
  $("reply-text").setAttribute("aria-busy", "true");
  $("reply-error").textContent = "";
  const sending = composer.mode === "note" ? sendNote(text) : sendReply(text, file);
  sending
    .catch((err) => {
      const what = composer.mode === "note" ? t("Note not saved: %(error)s") : t("Not sent: %(error)s");
      $("reply-error").textContent = fmt(what, { error: err.message });
    })
    .then(settle);
});
