/* Tabs and opening a conversation from anywhere (a panel card, a search hit, a
 * notification, a deep link). */
import { api } from "./api.js";
import { emit, state } from "./core.js";
import { maybeMarkRead, openDesk } from "./conversation.js";
import { upsertDesk } from "./inbox.js";

export function showTab(name) {
  document.querySelectorAll(".tab-button").forEach((button) => {
    if (button.dataset.tab === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  });
  document.querySelectorAll("main > .tab").forEach((section) => {
    section.hidden = section.id !== "tab-" + name;
  });
  if (name === "chat") maybeMarkRead();
  emit("tab", name);
}

document.querySelectorAll(".tab-button").forEach((button) => {
  button.addEventListener("click", () => showTab(button.dataset.tab));
});

// Open a help desk in the chat tab, fetching it first when the inbox has not got it.
export function openHelpDesk(uuid, options) {
  showTab("chat");
  if (state.desks.has(uuid)) return Promise.resolve(openDesk(uuid, options));
  return api("GET", "/api/help-desks/" + uuid + "/").then((result) => {
    upsertDesk(result.data, { rest: true });
    return openDesk(uuid, options);
  });
}
