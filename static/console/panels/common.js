/* What the panels share: a placeholder for a panel whose API is not on this server. */
import { clear, el } from "../dom.js";
import { fmt, t } from "../i18n.js";

export function unavailable(body, what) {
  clear(body);
  body.appendChild(el("p", { className: "placeholder", text: fmt(t("%(what)s are not available on this server yet."), { what }) }));
}
