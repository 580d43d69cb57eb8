"""The console's pages without a browser (Django's test client): these run even where
Chromium is missing, so `/` is never untested."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.django_db


def page_config(response):
    html = response.content.decode()
    marker = '<script id="console-config" type="application/json">'
    assert marker in html, html[:500]
    return json.loads(html.split(marker, 1)[1].split("</script>", 1)[0])


def test_anonymous_visitor_gets_the_login_form(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.templates[0].name == "registration/login.html"
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "console-config" not in html and "console.js" not in html
    assert "csrftoken" in response.cookies
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


def test_login_then_the_console_with_its_config(client, agent):
    from core.models import Membership, Team, TeamMember

    team = Team.objects.create(organization=agent.organization, slug="sales-team", name="Sales")
    TeamMember.objects.create(team=team, membership=Membership.objects.get(user=agent.user))

    response = client.post("/", {"username": "alice", "password": "wrong", "next": "/"})
    assert response.status_code == 200
    assert "match. Please try again" in response.content.decode()

    response = client.post("/", {"username": "alice", "password": "pw-alice", "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    response = client.get("/")
    assert response.status_code == 200
    assert response.templates[0].name == "console/app.html"
    html = response.content.decode()
    assert '<script type="module" src="/static/console/main.js">' in html
    assert 'rel="icon"' in html
    assert 'id="conn-status"' in html and 'id="inbox-list"' in html
    assert page_config(response) == {
        "username": "alice",
        "logout_url": "/logout/",
        "time_zone": "",  # none saved: the console formats times in the browser's zone
        "teams": {"acme": ["sales-team"]},
    }

    response = client.post("/logout/")
    assert response.status_code == 302
    assert client.get("/").templates[0].name == "registration/login.html"


def test_config_is_escaped_json_not_markup(client, make_agent):
    make_agent("eve</script><b>x")
    assert client.login(username="eve</script><b>x", password="pw-eve</script><b>x")
    response = client.get("/")
    assert "eve</script>" not in response.content.decode()
    assert page_config(response)["username"] == "eve</script><b>x"
