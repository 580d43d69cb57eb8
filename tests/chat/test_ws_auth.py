"""The periodic re-validation of open websockets costs a few queries per process, however
many sockets it holds (chat/ws_auth.py); its verdicts are tested end to end in
tests/chat/test_ws_security.py."""

from __future__ import annotations

import pytest
from django.utils import timezone

from chat.ws_auth import CLOSE_FORBIDDEN, CLOSE_UNAUTHENTICATED, Grant, recheck
from core.models import ApiKey, Membership

pytestmark = pytest.mark.django_db


def test_recheck_is_three_queries_whatever_the_number_of_sockets(
    make_agent, org, django_assert_num_queries
):
    # given 40 agents, each with a few sockets open
    agents = [make_agent(f"agent{n}", org) for n in range(40)]
    grants = [
        Grant(organization_id=org.pk, key_id=ApiKey.objects.get(user=a.user).pk, user_id=a.user.pk)
        for a in agents
    ]

    # then one check of all of them is one query each for keys, users and memberships
    with django_assert_num_queries(3):
        result = recheck(grants * 3)
    assert result.closes == {}

    # and it names exactly the sockets that lost access
    ApiKey.objects.filter(pk=grants[0].key_id).update(revoked_at=timezone.now())
    Membership.objects.filter(user_id=grants[1].user_id).delete()
    with django_assert_num_queries(3):
        result = recheck(grants)
    assert result.closes == {grants[0]: CLOSE_UNAUTHENTICATED, grants[1]: CLOSE_FORBIDDEN}
