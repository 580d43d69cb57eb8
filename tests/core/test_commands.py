"""Management commands: create_organization, create_api_key."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from core.models import ApiKey, Membership, Organization
from tests.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.django_db


def _run(*args: str) -> list[str]:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def _api(raw: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api


def test_create_organization_prints_a_working_key_last():
    lines = _run("create_organization", "acme", "--agent", "alice")

    key = lines[-1]
    assert "acme" in lines[0]
    response = _api(key).get("/api/organizations/")
    assert response.status_code == 200
    assert response.json() == [{"slug": "acme", "name": "acme", "role": "admin"}]
    assert _api(key).get("/api/help-desks/?organization=acme").status_code == 200
    assert not ApiKey.objects.filter(key_hash=key).exists()  # stored hashed only


def test_rerun_for_an_existing_organization_adds_the_agent():
    _run("create_organization", "acme", "--agent", "alice", "--name", "Acme Inc")
    key = _run("create_organization", "acme", "--agent", "bob", "--role", "agent")[-1]

    assert Organization.objects.count() == 1
    assert Organization.objects.get().name == "Acme Inc"
    assert set(Membership.objects.values_list("user__username", "role")) == {
        ("alice", "admin"),
        ("bob", "agent"),
    }
    assert [o["slug"] for o in _api(key).get("/api/organizations/").json()] == ["acme"]


def test_rerun_for_the_same_agent_gives_a_new_key_and_keeps_the_old_one():
    first = _run("create_organization", "acme", "--agent", "alice")[-1]
    second = _run("create_organization", "acme", "--agent", "alice")[-1]
    assert first != second
    assert _api(first).get("/api/organizations/").status_code == 200
    assert _api(second).get("/api/organizations/").status_code == 200


@pytest.mark.parametrize("slug", ["Bad Slug", "UPPER", "d&sh", "a" * 50, "", "with_underscore"])
def test_bad_slug_is_a_clear_error_and_creates_nothing(slug):
    with pytest.raises(CommandError) as excinfo:
        _run("create_organization", slug, "--agent", "alice")
    assert str(excinfo.value).startswith(f"slug {slug!r}: ")
    assert not Organization.objects.exists()
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("username", ["", "bad user", "semi;colon"])
def test_bad_agent_username_is_a_clear_error_and_creates_nothing(username):
    from django.contrib.auth import get_user_model

    with pytest.raises(CommandError) as excinfo:
        _run("create_organization", "acme", "--agent", username)
    assert "--agent" in str(excinfo.value)
    assert not Organization.objects.exists()
    assert not get_user_model().objects.exists()


def test_password_allows_session_login(client):
    _run("create_organization", "acme", "--agent", "alice", "--password", "s3cret-pass")
    assert client.login(username="alice", password="s3cret-pass")
    assert client.get("/api/organizations/").status_code == 200


def test_create_api_key_integration_is_scoped():
    _run("create_organization", "acme", "--agent", "alice")
    _run("create_organization", "other", "--agent", "bob")
    key = _run("create_api_key", "--organization", "acme", "--name", "bot", "--scopes", "read")[-1]
    assert [o["slug"] for o in _api(key).get("/api/organizations/").json()] == ["acme"]
    with pytest.raises(CommandError):
        _run("create_api_key", "--organization", "nosuch")
    with pytest.raises(CommandError):
        _run("create_api_key", "--user", "nosuch")


@pytest.mark.django_db(transaction=True)  # the subprocess needs the write lock
def test_create_organization_from_the_shell_exits_nonzero_on_a_bad_slug():
    # the real command line: a clear message, no traceback, a failing exit status
    bad = subprocess.run(
        [sys.executable, "manage.py", "create_organization", "Bad Slug", "--agent", "carol"],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr
    assert "slug 'Bad Slug'" in bad.stderr
    assert not Organization.objects.exists()
