"""Demo clients and conversations for `manage.py demo_data`."""

from __future__ import annotations

from chat import clients, services
from core.models import Organization

CLIENTS = [
    ("Ana Souza", "79161234567", "vip", "America/Sao_Paulo"),
    ("Ivan Petrov", "79031112233", "regular", "Europe/Moscow"),
    ("Maria Garcia", "79265554433", "regular", "Europe/Madrid"),
]


def create(*, organization: Organization) -> None:
    for name, phone, tag, tz in CLIENTS:
        client = clients.client_create(
            organization=organization, name=name, phone=phone, tag=tag, timezone=tz
        )
        services.message_receive(
            organization=organization, phone=client.phone, text=f"Hi, this is {name}."
        )
