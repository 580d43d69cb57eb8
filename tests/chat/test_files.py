"""Customer files (chat/files.py), tried as an attacker would, through a real daphne.

Every download goes over HTTP to a daphne process (one for the module); files are written
by that process to the module's MEDIA_ROOT, emptied before each test, which the test then
inspects on disk.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import time_machine
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat.models import Message
from tests.conftest import ROOT, Process, _http_ok, free_port, subprocess_env, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

BODY = b"private notes of the client\n"
ASGI_APP = "core.asgi:application"


@pytest.fixture(scope="module")
def _module_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def _module_web(django_db_setup, _use_test_redis, _module_media) -> Iterator[Process]:
    """One daphne for the module (a start per test was most of this file's time), serving
    the module's MEDIA_ROOT. Tests stay apart: their rows are flushed (new ids) and each
    gets that directory empty (`media`)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
        cwd=ROOT,
        env=subprocess_env(MEDIA_ROOT=str(_module_media)),
    )
    web = Process(process=process, url=f"http://127.0.0.1:{port}")
    try:
        # (generous: a failed start here fails every test of the module)
        wait_until(lambda: process.poll() is not None or _http_ok(f"{web.url}/health/"), timeout=60)
        assert process.poll() is None, "daphne exited at start"
        yield web
    finally:
        web.stop()


@pytest.fixture
def media(settings, _module_media) -> Path:
    """The MEDIA_ROOT the module's daphne writes to, empty at the start of each test."""
    for entry in _module_media.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    settings.MEDIA_ROOT = str(_module_media)
    return _module_media


@pytest.fixture
def web(transactional_db, _module_web, media):
    return _module_web


def _upload(http: httpx.Client, help_desk, name="note.txt", body=BODY, content_type="text/plain"):
    response = http.post(
        "/api/send-message/",
        data={"help_desk": str(help_desk.uuid), "message": "see file"},
        files={"file": (name, body, content_type)},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _stored(sent: dict) -> Path:
    message = Message.objects.get(uuid=sent["uuid"])
    return Path(settings.MEDIA_ROOT) / message.file.name


def _error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


# --- who gets a file ----------------------------------------------------------------------


def test_no_public_media_route(web, agent, help_desk):
    sent = _upload(agent.http(web.url), help_desk)
    stored = Message.objects.get(uuid=sent["uuid"]).file.name

    response = httpx.get(f"{web.url}/media/{stored}")

    assert response.status_code == 404
    assert BODY not in response.content


def test_stored_under_a_random_name_in_its_organization(web, agent, help_desk):
    first = _upload(agent.http(web.url), help_desk)
    second = _upload(agent.http(web.url), help_desk)

    names = [Message.objects.get(uuid=s["uuid"]).file.name for s in (first, second)]
    for name in names:
        assert re.fullmatch(rf"messages/{help_desk.organization_id}/[0-9a-f]{{32}}\.txt", name)
        assert "note" not in name
    assert names[0] != names[1]
    assert _stored(first).read_bytes() == BODY
    # The REST shape names the download view, and the uploaded name apart.
    assert first["file"] == f"/api/messages/{first['uuid']}/file/"
    assert first["file_name"] == "note.txt"


def test_anonymous_gets_nothing(web, agent, help_desk):
    sent = _upload(agent.http(web.url), help_desk)

    response = httpx.get(f"{web.url}{sent['file']}")

    assert response.status_code in (401, 403)
    assert BODY not in response.content
    assert "error" in response.json()


def test_another_organizations_agent_gets_404_a_member_gets_the_file(
    web, agent, help_desk, make_agent, make_org
):
    sent = _upload(agent.http(web.url), help_desk)
    mallory = make_agent("mallory", make_org("evil"))
    bob = make_agent("bob", agent.organization, role="member")

    foreign = mallory.http(web.url).get(sent["file"])
    member = bob.http(web.url).get(f"/api/messages/{sent['uuid']}/file/")

    assert foreign.status_code == 404
    assert _error_code(foreign) == "not_found"
    assert BODY not in foreign.content
    assert member.status_code == 200
    assert member.content == BODY
    assert member.headers["content-type"].startswith("text/plain")
    assert member.headers["content-disposition"] == 'attachment; filename="note.txt"'
    assert member.headers["x-content-type-options"] == "nosniff"
    assert "private" in member.headers["cache-control"]
    assert "sandbox" in member.headers["content-security-policy"]


def test_images_inline_other_types_attachment_with_their_name(web, agent, help_desk):
    http = agent.http(web.url)
    png = _upload(http, help_desk, name="photo.png", body=b"\x89PNG\r\n", content_type="image/png")
    pdf = _upload(
        http, help_desk, name="счёт №1.pdf", body=b"%PDF-1.4", content_type="application/pdf"
    )

    image = http.get(png["file"])
    document = http.get(pdf["file"])

    assert image.status_code == 200 and image.content == b"\x89PNG\r\n"
    assert image.headers["content-type"] == "image/png"
    assert image.headers["content-disposition"].startswith("inline")
    assert document.status_code == 200 and document.content == b"%PDF-1.4"
    assert document.headers["content-type"] == "application/pdf"
    # RFC 6266: a non-ASCII name travels as filename*=utf-8''...
    assert document.headers["content-disposition"] == (
        "attachment; filename*=utf-8''%D1%81%D1%87%D1%91%D1%82%20%E2%84%961.pdf"
    )


def test_uploaded_name_loses_control_and_direction_characters(web, agent, help_desk):
    # "photo<RLO>gnp.pdf" is shown as "photofdp.png": a PDF passing for an image
    sent = _upload(
        agent.http(web.url),
        help_desk,
        name="photo\u202egnp.pdf",
        body=b"%PDF",
        content_type="application/pdf",
    )

    response = agent.http(web.url).get(sent["file"])

    assert sent["file_name"] == "photognp.pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="photognp.pdf"'


@pytest.mark.skipif(
    "core.permissions.ScopePermission"
    not in settings.REST_FRAMEWORK.get("DEFAULT_PERMISSION_CLASSES", []),
    reason="API key scopes (core/permissions.py) not enabled",
)
def test_leaked_integration_key_without_read_scope_gets_403(web, agent, help_desk):
    from core.services import api_key_create

    sent = _upload(agent.http(web.url), help_desk)
    _, raw = api_key_create(name="bot", organization=agent.organization)  # default scopes

    response = httpx.get(f"{web.url}{sent['file']}", headers={"Authorization": f"Bearer {raw}"})

    assert response.status_code == 403
    assert BODY not in response.content


def test_file_uploaded_under_the_old_scheme_is_served(web, agent, help_desk, media):
    # given a file stored as the old upload_to did: messages/<year>/<month>/<own name>
    old = media / "messages" / "2025" / "11" / "contract.pdf"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"%PDF old")
    message = Message.objects.create(
        help_desk=help_desk,
        message="old",
        type=Message.Type.SENT,
        file="messages/2025/11/contract.pdf",
        file_name="contract.pdf",
    )

    response = agent.http(web.url).get(f"/api/messages/{message.uuid}/file/")
    public = httpx.get(f"{web.url}/media/messages/2025/11/contract.pdf")

    assert response.status_code == 200
    assert response.content == b"%PDF old"
    assert response.headers["content-disposition"] == 'attachment; filename="contract.pdf"'
    assert public.status_code == 404


def test_message_without_file_is_404(web, agent, help_desk):
    sent = agent.http(web.url).post(
        "/api/send-message/", data={"help_desk": str(help_desk.uuid), "message": "text only"}
    )
    assert sent.json()["file"] is None

    response = agent.http(web.url).get(f"/api/messages/{sent.json()['uuid']}/file/")

    assert response.status_code == 404
    assert _error_code(response) == "not_found"


# --- signed links (the client's SMS) ----------------------------------------------------


def _sms_link(sent: dict) -> str:
    text = Message.objects.select_related("delivery").get(uuid=sent["uuid"]).delivery.text
    links = re.findall(r"https?://\S+", text)
    assert len(links) == 1, text
    return links[0]


def test_sms_carries_a_signed_link_that_works_without_a_session(web, agent, help_desk):
    sent = _upload(agent.http(web.url), help_desk)
    link = _sms_link(sent)
    assert link.startswith(f"{settings.PUBLIC_BASE_URL}/api/files/")
    assert "note" not in link and "/media/" not in link

    response = httpx.get(f"{web.url}{urlsplit(link).path}")

    assert response.status_code == 200
    assert response.content == BODY
    assert response.headers["content-disposition"] == 'attachment; filename="note.txt"'


def test_tampered_link_is_refused(web, agent, help_desk):
    path = urlsplit(_sms_link(_upload(agent.http(web.url), help_desk))).path
    token = path.rstrip("/").rsplit("/", 1)[1]
    # given another message of another organization, whose uuid an attacker knows
    other = _upload(agent.http(web.url), help_desk, name="other.txt", body=b"other")
    value, timestamp, signature = token.split(":")
    forged = [
        f"{value}:{timestamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{other['uuid'].replace('-', '')}:{timestamp}:{signature}",
        value,
        "nonsense",
    ]

    for bad in forged:
        response = httpx.get(f"{web.url}/api/files/{bad}/")
        assert response.status_code == 403, bad
        assert _error_code(response) == "link_invalid"
        assert BODY not in response.content and b"other" not in response.content


def test_expired_link_is_refused(web, agent, help_desk):
    from chat.files import file_link_url

    sent = _upload(agent.http(web.url), help_desk)
    message = Message.objects.get(uuid=sent["uuid"])
    with time_machine.travel(
        timezone.now() - timedelta(seconds=settings.FILE_LINK_MAX_AGE + 60), tick=False
    ):
        expired = file_link_url(message)
    with time_machine.travel(
        timezone.now() - timedelta(seconds=settings.FILE_LINK_MAX_AGE - 60), tick=False
    ):
        nearly = file_link_url(message)

    old = httpx.get(f"{web.url}{urlsplit(expired).path}")
    young = httpx.get(f"{web.url}{urlsplit(nearly).path}")

    assert old.status_code == 403
    assert _error_code(old) == "link_expired"
    assert young.status_code == 200 and young.content == BODY


def test_link_to_a_deleted_message_is_404(web, agent, help_desk):
    http = agent.http(web.url)
    link = _sms_link(_upload(http, help_desk))
    assert http.delete(f"/api/help-desks/{help_desk.uuid}/").status_code == 204

    response = httpx.get(f"{web.url}{urlsplit(link).path}")

    assert response.status_code == 404
    assert _error_code(response) == "not_found"


# --- deletion and the sweeper -------------------------------------------------------------


def test_deleting_a_help_desk_removes_its_files(web, agent, help_desk, make_client):
    http = agent.http(web.url)
    files = [_stored(_upload(http, help_desk, name=f"n{i}.txt")) for i in range(2)]
    other_desk = _other_help_desk(agent, make_client)
    kept = _stored(_upload(http, other_desk))
    assert all(f.exists() for f in [*files, kept])

    assert http.delete(f"/api/help-desks/{help_desk.uuid}/").status_code == 204

    assert not any(f.exists() for f in files)
    assert kept.exists()


def test_deleting_a_client_removes_its_help_desks_files(web, agent, help_desk, make_client):
    http = agent.http(web.url)
    stored = _stored(_upload(http, help_desk))
    other_desk = _other_help_desk(agent, make_client)
    kept = _stored(_upload(http, other_desk))

    assert http.delete(f"/api/clients/{help_desk.client.uuid}/").status_code == 204

    assert not stored.exists()
    assert kept.exists()


def test_deleting_a_message_in_the_admin_removes_its_file(web, agent, help_desk, staff):
    sent = _upload(agent.http(web.url), help_desk)
    stored = _stored(sent)
    message = Message.objects.get(uuid=sent["uuid"])

    response = staff.post(f"/admin/chat/message/{message.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Message.objects.filter(pk=message.pk).exists()
    assert not stored.exists()


def test_a_rolled_back_deletion_keeps_the_files(web, agent, help_desk):
    from chat.services import help_desk_delete

    stored = _stored(_upload(agent.http(web.url), help_desk))
    help_desk_id = help_desk.pk

    with pytest.raises(RuntimeError), transaction.atomic():
        help_desk_delete(help_desk=help_desk)
        raise RuntimeError("rolled back")

    assert stored.exists()
    assert Message.objects.filter(help_desk_id=help_desk_id).exists()


def test_sweeper_removes_old_orphans_only(web, agent, help_desk, media):
    from chat.jobs import message_files_sweep

    referenced = _stored(_upload(agent.http(web.url), help_desk))
    orphans = media / "messages" / str(help_desk.organization_id)
    old_orphan = orphans / "0123456789abcdef0123456789abcdef.txt"
    fresh_orphan = orphans / "fedcba9876543210fedcba9876543210.txt"
    legacy_orphan = media / "messages" / "2024" / "01" / "left-behind.pdf"
    legacy_orphan.parent.mkdir(parents=True)
    for path in (old_orphan, fresh_orphan, legacy_orphan):
        path.write_bytes(b"orphan")
    long_ago = time.time() - settings.FILE_ORPHAN_GRACE - 60
    for path in (old_orphan, legacy_orphan, referenced):
        os.utime(path, (long_ago, long_ago))
    unrelated = media / "elsewhere.txt"  # outside messages/: not the sweeper's
    unrelated.write_bytes(b"x")
    os.utime(unrelated, (long_ago, long_ago))

    removed = message_files_sweep()

    assert removed == 2
    assert not old_orphan.exists() and not legacy_orphan.exists()
    assert fresh_orphan.exists()  # maybe an upload whose transaction has not committed
    assert referenced.exists()
    assert unrelated.exists()
    assert message_files_sweep() == 0


def _other_help_desk(agent, make_client):
    from chat.services import help_desk_open

    desk, _ = help_desk_open(client=make_client(agent.organization))
    return desk
