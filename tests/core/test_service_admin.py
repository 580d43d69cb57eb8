"""ServiceAdmin's contract (core/service_admin.py) on a test-only admin site
(tests/core/service_admin_site.py), then the platform admin (core/admin.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from core.models import ApiKey, Delivery, Membership, Organization, Team
from core.service_admin import ServiceAdmin, ServiceInline
from tests.core import service_admin_site as site

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_records() -> None:
    site.CALLS.clear()
    site.EFFECTS.clear()


def _texts(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _members(**rows: Any) -> dict[str, Any]:
    form = {
        "members-TOTAL_FORMS": str(len(rows.get("rows", []))),
        "members-INITIAL_FORMS": str(rows.get("initial", 0)),
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows.get("rows", [])):
        form.update({f"members-{i}-{k}": v for k, v in row.items()})
    return form


ADD = "/services/core/team/add/"
LIST = "/services/core/team/"


def _change(team: Team) -> str:
    return f"/services/core/team/{team.pk}/change/"


@pytest.mark.urls("tests.core.service_admin_site")
def test_add_goes_through_the_service_and_its_effect_fires_once_after_commit(
    staff, org, agent, django_capture_on_commit_callbacks
):
    membership = Membership.objects.get(user=agent.user)
    form = {"organization": org.pk, "slug": "ops", "name": "ops team"}
    form |= _members(rows=[{"membership": membership.pk, "order": "2"}])
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(ADD, form)
    assert response.status_code == 302
    team = Team.objects.get(slug="ops")
    assert team.name == "OPS TEAM"  # what the service wrote, not what the form said
    assert [("create", "ops"), ("member_add", membership.pk)] == site.CALLS
    assert site.EFFECTS == [("created", "ops")]
    assert list(team.members.values_list("order", flat=True)) == [2]


@pytest.mark.urls("tests.core.service_admin_site")
def test_a_refusal_is_the_form_again_with_its_errors_and_nothing_written(
    staff, org, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        form = {"organization": org.pk, "slug": "refused", "name": "x"} | _members()
        response = staff.post(ADD, form)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["slug"] == ["Not this slug."]
    assert form.non_field_errors() == ["Refused.", "other: X."]  # and the unknown field's
    assert site.CALLS == [("create", "refused")]
    assert not Team.objects.exists() and site.EFFECTS == []


@pytest.mark.urls("tests.core.service_admin_site")
def test_change_sends_only_the_changed_fields_and_a_refusal_rolls_back(
    staff, org, django_capture_on_commit_callbacks
):
    team = Team.objects.create(organization=org, slug="ops", name="Ops")
    unchanged = {"organization": org.pk, "slug": "ops", "name": "Ops"} | _members()
    assert staff.post(_change(team), unchanged).status_code == 302
    assert site.CALLS == []  # nothing changed, nothing called

    with django_capture_on_commit_callbacks(execute=True):
        ok = staff.post(_change(team), unchanged | {"name": "Ops 2"})
    assert ok.status_code == 302
    assert site.CALLS == [("update", {"name": "Ops 2"})]
    assert site.EFFECTS == [("updated", "ops")]

    with django_capture_on_commit_callbacks(execute=True):
        refused = staff.post(_change(team), unchanged | {"name": "refused"})
    assert refused.status_code == 200
    assert refused.context["adminform"].form.non_field_errors() == ["Not renamed."]
    team.refresh_from_db()
    assert team.name == "Ops 2"  # the service's own write rolled back with the request
    assert site.EFFECTS == [("updated", "ops")]


@pytest.mark.urls("tests.core.service_admin_site")
def test_inline_rows_go_through_the_inline_services(staff, org, agent, make_agent):
    team = Team.objects.create(organization=org, slug="ops", name="Ops")
    first = Membership.objects.get(user=agent.user)
    second = Membership.objects.get(user=make_agent("bob", org=org).user)
    row = site.member_add(team=team, membership=first, order=1)
    site.CALLS.clear()
    base = {"organization": org.pk, "slug": "ops", "name": "Ops"}
    rows = [
        {"id": row.pk, "team": team.pk, "membership": first.pk, "order": "5"},
        {"team": team.pk, "membership": second.pk, "order": "3"},
    ]
    assert staff.post(_change(team), base | _members(rows=rows, initial=1)).status_code == 302
    assert [("member_update", {"order": 5}), ("member_add", second.pk)] == site.CALLS

    site.CALLS.clear()
    added = team.members.get(membership=second)
    rows = [
        {"id": row.pk, "team": team.pk, "membership": first.pk, "order": "5", "DELETE": "on"},
        {"id": added.pk, "team": team.pk, "membership": second.pk, "order": "3"},
    ]
    assert staff.post(_change(team), base | _members(rows=rows, initial=2)).status_code == 302
    assert [("member_remove", row.pk)] == site.CALLS
    assert list(team.members.values_list("membership", flat=True)) == [second.pk]

    # A refused row: the page again, the row named at the top, nothing written.
    rows = [
        {"id": added.pk, "team": team.pk, "membership": second.pk, "order": "3"},
        {"team": team.pk, "membership": first.pk, "order": "99"},
    ]
    refused = staff.post(_change(team), base | _members(rows=rows, initial=1))
    assert refused.status_code == 200
    (error,) = refused.context["adminform"].form.non_field_errors()
    assert error.startswith("team member") and "Bad order. order: Not 99." in error
    assert team.members.count() == 1


@pytest.mark.urls("tests.core.service_admin_site")
def test_delete_and_a_refused_delete(staff, org, django_capture_on_commit_callbacks):
    gone = Team.objects.create(organization=org, slug="gone", name="x")
    kept = Team.objects.create(organization=org, slug="keep", name="x")
    with django_capture_on_commit_callbacks(execute=True):
        assert staff.post(f"{LIST}{gone.pk}/delete/", {"post": "yes"}).status_code == 302
    refused = staff.post(f"{LIST}{kept.pk}/delete/", {"post": "yes"})
    assert refused.status_code == 302 and refused["Location"] == _change(kept)
    assert _texts(refused)[-1] == "This team stays."
    assert list(Team.objects.values_list("slug", flat=True)) == ["keep"]
    assert site.EFFECTS == [("deleted", "gone")]
    logged = LogEntry.objects.filter(action_flag=DELETION)
    assert list(logged.values_list("object_repr", flat=True)) == [str(gone)]


@pytest.mark.urls("tests.core.service_admin_site")
def test_bulk_delete_keeps_the_refused_rows_and_names_them(
    staff, org, django_capture_on_commit_callbacks
):
    teams = [Team.objects.create(organization=org, slug=s, name="x") for s in ("a", "keep-b")]
    selected = {"action": "delete_selected", "_selected_action": [t.pk for t in teams]}
    confirm = staff.post(LIST, selected)
    assert confirm.status_code == 200 and site.CALLS == []  # Django's confirmation page
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(LIST, selected | {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert _texts(response) == [
        "Deleted 1 team.",
        f"Not deleted: keep-b @ {org.pk}: This team stays.",
    ]
    assert list(Team.objects.values_list("slug", flat=True)) == ["keep-b"]
    assert site.EFFECTS == [("deleted", "a")]
    # Only the deleted row is logged as deleted.
    assert list(LogEntry.objects.values_list("object_repr", flat=True)) == [f"a @ {org.pk}"]


@pytest.mark.urls("tests.core.service_admin_site")
def test_a_refused_action_is_rolled_back_whole(staff, org, django_capture_on_commit_callbacks):
    teams = [Team.objects.create(organization=org, slug=s, name="x") for s in ("a", "b")]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            LIST, {"action": "rename", "_selected_action": [t.pk for t in teams]}, follow=True
        )
    assert response.status_code == 200 and _texts(response) == ["Not renamed."]
    assert set(Team.objects.values_list("name", flat=True)) == {"x"}  # "a" too
    assert site.EFFECTS == []


@pytest.mark.urls("tests.core.service_admin_site")
def test_permissions_follow_the_declared_services(staff, org, agent):
    membership = Membership.objects.get(user=agent.user)
    team = Team.objects.create(organization=org, slug="ops", name="x")
    member = site.member_add(team=team, membership=membership, order=0)
    base = "/services/core/teammember/"
    assert staff.get(f"{base}add/").status_code == 403
    assert staff.post(f"{base}{member.pk}/delete/", {"post": "yes"}).status_code == 403
    page = staff.get(f"{base}{member.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' in page.content
    assert b'value="delete_selected"' not in staff.get(base).content


@pytest.mark.urls("tests.core.service_admin_site")
def test_an_inline_saved_by_the_parents_service(staff, org):
    Team.objects.create(organization=org, slug="old", name="Old")
    change = f"/services/core/organization/{org.pk}/change/"

    def form(*rows: tuple[str, str], name: str = "Acme") -> dict[str, Any]:
        data = {
            "name": name,
            "teams-TOTAL_FORMS": str(len(rows) + 1),
            "teams-INITIAL_FORMS": "1",
            "teams-MIN_NUM_FORMS": "0",
            "teams-MAX_NUM_FORMS": "1000",
            "teams-0-id": Team.objects.get(slug="old").pk,
            "teams-0-organization": org.pk,
            "teams-0-slug": "old",
            "teams-0-name": "Old",
            "teams-0-DELETE": "on",
        }
        for i, (slug, title) in enumerate(rows, start=1):
            data |= {f"teams-{i}-slug": slug, f"teams-{i}-name": title}
        return data

    refused = staff.post(change, form(("refused", "R")))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.non_field_errors() == [
        "No such team.",
        "teams: refused is not allowed.",
    ]
    assert list(Team.objects.values_list("slug", flat=True)) == ["old"]

    assert staff.post(change, form(("new", "New"))).status_code == 302
    assert site.CALLS[-1] == ("organization_update", {}, [("new", "New")])  # one call
    assert list(Team.objects.values_list("slug", flat=True)) == ["new"]


# --- the platform admin ------------------------------------------------------------------


def test_organization_add_with_a_member_goes_through_core_services(staff, agent):
    form = {
        "slug": "beta",
        "name": "",
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-user": agent.user.pk,
        "memberships-0-role": "admin",
        "memberships-0-is_available": "on",
    }
    response = staff.post(reverse("admin:core_organization_add"), form)
    assert response.status_code == 200  # name is required by the form
    form["name"] = "Beta"
    assert staff.post(reverse("admin:core_organization_add"), form).status_code == 302
    beta = Organization.objects.get(slug="beta")
    assert Membership.objects.get(organization=beta, user=agent.user).role == "admin"
    change = staff.get(reverse("admin:core_organization_change", args=[beta.pk]))
    assert b'name="slug"' not in change.content  # in its clients' URLs: never renamed
    assert b'class="deletelink"' not in change.content  # no organization_delete service


def test_a_membership_does_not_move(staff, org, agent, make_org):
    membership = Membership.objects.get(user=agent.user)
    change = reverse("admin:core_membership_change", args=[membership.pk])
    page = staff.get(change)
    assert page.status_code == 200 and b'name="user"' not in page.content
    response = staff.post(change, {"role": "agent", "is_available": ""})
    assert response.status_code == 302
    membership.refresh_from_db()
    assert (membership.role, membership.is_available) == ("agent", False)
    assert membership.organization == org


def test_api_key_is_revoked_and_rescoped_through_the_service_never_moved(
    staff, org, agent, make_org
):
    key = ApiKey.objects.get(user=agent.user)
    change = reverse("admin:core_apikey_change", args=[key.pk])
    assert staff.get(reverse("admin:core_apikey_add")).status_code == 403
    response = staff.post(
        change,
        {
            "name": "renamed",
            "scopes": ["read"],
            "revoked_at_0": "2026-01-01",
            "revoked_at_1": "00:00:00",
            "user": make_agent_user(make_org),
        },
    )
    assert response.status_code == 302, response.content[:2000]
    key.refresh_from_db()
    assert (key.name, key.scopes, key.user) == ("renamed", ["read"], agent.user)
    assert key.revoked_at is not None
    from core.auth import api_key_lookup

    assert api_key_lookup(agent.key) is None


def make_agent_user(make_org: Any) -> int:
    from core.services import agent_create

    return agent_create(username="mallory").pk


@pytest.mark.parametrize("model", ["delivery", "deliveryattempt"])
def test_deliveries_are_read_only(staff, org, model):
    delivery = Delivery.objects.create(
        organization=org, source=Delivery.Source.CHAT, phone=79160000000, text="hi"
    )
    assert staff.get(reverse(f"admin:core_{model}_add")).status_code == 403
    if model == "delivery":
        change = reverse("admin:core_delivery_change", args=[delivery.pk])
        assert staff.get(change).status_code == 200
        assert staff.post(change, {"text": "changed"}).status_code == 403
        delete = reverse("admin:core_delivery_delete", args=[delivery.pk])
        assert staff.post(delete, {"post": "yes"}).status_code == 403
        delivery.refresh_from_db()
        assert delivery.text == "hi"


# Escalation's admin moves to ServiceAdmin in its own change (issue 11): until then its
# two writing admins are named here, so that no other admin can start writing by itself.
def test_every_admin_writes_through_services_or_not_at_all(rf, django_user_model):
    request = rf.get("/admin/")
    request.user = django_user_model(is_superuser=True, is_staff=True, is_active=True)

    def writes(model_admin: Any) -> bool:
        return any(
            check(request)
            for check in (
                model_admin.has_add_permission,
                model_admin.has_change_permission,
                model_admin.has_delete_permission,
            )
        )

    checked = 0
    for model in apps.get_models():
        label = model._meta.label_lower
        if not admin.site.is_registered(model) or model._meta.app_label == "auth":
            continue
        model_admin = admin.site.get_model_admin(model)
        checked += 1
        if not isinstance(model_admin, ServiceAdmin):
            assert not writes(model_admin), label
            continue  # (nor its inlines: its page saves nothing)
        for inline in model_admin.get_inline_instances(request):
            assert isinstance(inline, ServiceInline) or not writes(inline), (label, inline)
    assert checked >= 15
