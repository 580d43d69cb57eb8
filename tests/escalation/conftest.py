"""Escalation test helpers: an integration (monitoring) client and the demo rule."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from core.services import api_key_create

SEED = {
    "gatilhos": [{"servico": "login", "retorno": "503"}, {"servico": "login", "retorno": "404"}]
}


@pytest.fixture
def monitoring_key(org: Any) -> str:
    _, raw = api_key_create(name="monitoring", organization=org)
    return raw


@pytest.fixture
def monitoring(monitoring_key: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {monitoring_key}")
    return api


@pytest.fixture
def rule(org: Any, agent: Any, make_client: Any) -> Any:
    """The seed's action 0001 (escalation.demo) with a vip client to warn."""
    from escalation.demo import create

    make_client(org, tag="vip")
    return create(organization=org)


@pytest.fixture(autouse=True)
def _fresh_rules_cache() -> None:
    """Rules saved inside a test transaction never commit, so they never bump the
    cache token: start every test with an empty per-process rules cache."""
    from escalation.rules import rules_cache_clear

    rules_cache_clear()


@pytest.fixture(autouse=True)
def _evaluator_returns_at_once(settings: Any) -> None:
    """In-process tests call the evaluation job body directly: no lingering."""
    settings.ESCALATION_EVALUATOR_IDLE = 0
