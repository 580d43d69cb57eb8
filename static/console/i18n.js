/* Every user-visible string of the console goes through t() / tn(), so it can be
 * extracted (makemessages -d djangojs, with the keywords t and tn:1,2) and translated:
 * when Django's JavaScriptCatalog is loaded (window.gettext / ngettext) it translates,
 * otherwise the English text is used as is. Placeholders are named, `%(name)s`, as in
 * Django's interpolate(), so a translator can reorder them. */

export function t(text) {
  return typeof window.gettext === "function" ? window.gettext(text) : text;
}

export function tn(singular, plural, n) {
  if (typeof window.ngettext === "function") return window.ngettext(singular, plural, n);
  return n === 1 ? singular : plural;
}

// fmt(t("New message from %(name)s"), {name: "Olga"}): plain text in, plain text out.
export function fmt(text, values) {
  return text.replace(/%\((\w+)\)s/g, (_, key) => {
    const value = values[key];
    return value === null || value === undefined ? "" : String(value);
  });
}
