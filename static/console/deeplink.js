/* On the login page: keep the deep link (`/#<org>/<help desk uuid>`) through the login.
 * The fragment never reaches the server, so the form's POST and its redirect would drop
 * it; it is kept in this tab's sessionStorage (main.js takes it once) and in the form's
 * action (a redirect without a fragment keeps the request's). Loaded on every page of
 * base.html; does nothing without a login form. */
const password = document.querySelector("form input[name=password]");
if (password && location.hash.length > 1) {
  try {
    sessionStorage.setItem("console.deepLink", location.hash);
  } catch (e) {
    /* private mode: the form's action still carries it */
  }
  const form = password.form;
  form.setAttribute("action", (form.getAttribute("action") || location.pathname).split("#")[0] + location.hash);
}
