"""The unsubscribe link of promotional email (RFC 8058): `/u/<signed token>/`.

- POST (the mail provider's one-click request, `List-Unsubscribe=One-Click` in the body,
  or the confirmation page's button) opts the client out of promotional email, at once.
- GET shows a confirmation page with that button and changes nothing: mail scanners and
  link previews fetch links, and a GET must not unsubscribe anyone.

No authentication: the signed token (`mailing.unsubscribe`) is the authority, and it
grants one thing, opting its own client out. No CSRF check on the POST, on purpose:
RFC 8058 requires the provider's server to POST without cookies or a token of ours,
and CSRF protects what a victim's *session* may do; this view reads no session or cookie,
so a forged cross-site POST can achieve nothing the link's holder could not already do
(and the worst it can do is the recipient's own opt-out). A forged, altered or expired
token is a 404 that says the link is not valid.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from mailing.services.contacts import client_email_unsubscribe
from mailing.unsubscribe import unsubscribe_client_id


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    client_id = unsubscribe_client_id(token)
    if client_id is None:
        return render(request, "mailing/unsubscribe.html", {"state": "invalid"}, status=404)
    if request.method == "POST":
        found = client_email_unsubscribe(client_id=client_id)
        return render(
            request,
            "mailing/unsubscribe.html",
            {"state": "done" if found else "invalid"},
            status=200 if found else 404,
        )
    return render(request, "mailing/unsubscribe.html", {"state": "confirm"})
