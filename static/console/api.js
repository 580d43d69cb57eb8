/* The REST client: JSON or multipart, the CSRF header for session auth, the `Link`
 * header's next page, and one error type carrying the API's field errors. */
import { fmt, t } from "./i18n.js";

function getCookie(name) {
  const parts = document.cookie ? document.cookie.split("; ") : [];
  for (const part of parts) {
    const eq = part.indexOf("=");
    if (part.slice(0, eq) === name) return decodeURIComponent(part.slice(eq + 1));
  }
  return null;
}

function csrfToken() {
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return getCookie("csrftoken") || (input ? input.value : "");
}

export class ApiError extends Error {
  constructor(status, body) {
    const err = body && body.error;
    let message = (err && err.message) || fmt(t("Request failed (%(status)s)."), { status });
    const fields = (err && err.fields) || {};
    const details = Object.keys(fields).map((field) => field + ": " + [].concat(fields[field]).join(" "));
    if (details.length) message += " " + details.join("; ");
    super(message);
    this.status = status;
    this.body = body;
    this.fields = fields;
  }
}

function parseNextLink(header) {
  if (!header) return null;
  for (const part of header.split(",")) {
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(part);
    if (match) return match[1];
  }
  return null;
}

export function api(method, url, body) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") options.headers["X-CSRFToken"] = csrfToken();
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  return fetch(url, options).then((response) => {
    if (response.status === 401) {
      location.href = "/" + location.hash; // session expired: log in, then back here
      throw new ApiError(401, null);
    }
    const next = parseNextLink(response.headers.get("Link"));
    const parse = response.status === 204 ? Promise.resolve(null) : response.json().catch(() => null);
    return parse.then((data) => {
      if (!response.ok) throw new ApiError(response.status, data);
      return { data, next };
    });
  });
}

export function orgQuery(org) {
  return "organization=" + encodeURIComponent(org);
}
