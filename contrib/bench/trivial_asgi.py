"""The ceiling for `trigger_ingest.py --app trivial`: an ASGI app that reads the request
body and answers 202 with a small JSON body, no Django, no database, no Redis. What one
daphne process itself allows on this machine."""

from __future__ import annotations

from typing import Any

BODY = b'{"received":1,"batches":[1],"matched":[],"unmatched":[]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 200 if scope["path"] == "/health/" else 202
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
