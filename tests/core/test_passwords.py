"""Password rules (AUTH_PASSWORD_VALIDATORS) where the product sets passwords."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model, password_validation
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import Organization

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password123", "too common"),
        ("48151623429", "entirely numeric"),
        ("alice.smith1", "too similar to the username"),
        ("k7#qZ", "too short"),
    ],
)
def test_create_organization_refuses_a_weak_password(password: str, reason: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        call_command(
            "create_organization", "acme", "--agent", "alice.smith", "--password", password
        )
    assert str(excinfo.value).startswith("--password: ")
    assert reason in str(excinfo.value)
    assert not Organization.objects.exists()
    assert not get_user_model().objects.exists()


def test_the_admin_password_rules_are_the_common_ones(settings: Any) -> None:
    names = {v["NAME"].rsplit(".", 1)[1] for v in settings.AUTH_PASSWORD_VALIDATORS}
    assert {
        "CommonPasswordValidator",
        "UserAttributeSimilarityValidator",
        "NumericPasswordValidator",
        "MinimumLengthValidator",
    } <= names


def test_demo_data_prints_a_strong_password_that_logs_in(
    tmp_path: Path, monkeypatch: Any, client: Any
) -> None:
    from core.management.commands import demo_data

    monkeypatch.setattr(demo_data, "CREDENTIALS", tmp_path / "demo-credentials.json")
    out = io.StringIO()
    call_command("demo_data", stdout=out)
    found = re.search(r"username: agent\s+password: (\S+)", out.getvalue())
    assert found, out.getvalue()
    password = found[1]
    user = get_user_model().objects.get(username="agent")
    password_validation.validate_password(password, user=user)  # raises if weak
    assert client.login(username="agent", password=password)
    # run again (idempotent): the same password is printed, and still works
    again = io.StringIO()
    call_command("demo_data", stdout=again)
    assert f"password: {password}" in again.getvalue()
    assert client.login(username="agent", password=password)
