#!/usr/bin/env python
"""Write `.env` for local development (kept if it exists; `--force` rewrites it).

Generates the Django secret, the /metrics token, the simulator's JWT secret and a JWT
signed with it (the token the platform presents to the external sender). Every variable is
described in `.env.example`.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

import jwt

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--path", default=str(ROOT / ".env"))
    args = parser.parse_args()
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"{path} exists; keeping it (use --force to rewrite).")
        return 0
    jwt_secret = secrets.token_urlsafe(32)
    token = jwt.encode({"sub": "platform", "iat": int(time.time())}, jwt_secret, algorithm="HS256")
    path.write_text(
        "\n".join(
            [
                "# Written by contrib/generate_env.py; see .env.example for every variable.",
                f"SECRET_KEY={secrets.token_urlsafe(50)}",
                "# Bearer token of the Prometheus scraper (/metrics is 403 without one).",
                f"METRICS_TOKEN={secrets.token_urlsafe(32)}",
                "DEBUG=True",
                "LOG_FORMAT=console",
                "# DATABASE_URL=postgres://postgres@127.0.0.1:5432/platform",
                "# REDIS_URL=redis://127.0.0.1:6379/0",
                "SENDER_URL=http://127.0.0.1:8020",
                f"SENDER_JWT_SECRET={jwt_secret}",
                f"SENDER_TOKEN={token}",
                "",
            ]
        )
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
