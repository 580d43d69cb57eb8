"""Outbound HTTP to a URL a tenant chose: the one place for the address policy.

A tenant sets an assistance topic's webhook URL and the worker posts to it, from
inside the platform's network. Unchecked, that URL reaches what no tenant should:
Redis on `[::1]:6379`, the admin of a service on `127.0.0.1:<port>`, the cloud
metadata service on `169.254.169.254` (credentials), any RFC 1918 host. The policy:

1. Save time, `validate_public_url(url)`: http or https only, a host, no userinfo
   (`https://public.example@10.0.0.5/` reads as one host and connects to another),
   then the host is resolved and refused if ANY address is not public (a name with a
   public and a private record is as bad as a private one). Parsing is httpx's, the
   parser that later connects, so the check and the connection cannot disagree on
   what the host is.
2. Send time, `post_public_url(url, ...)`: the same checks against a fresh
   resolution (the row may predate the policy, or the name may now point inside),
   resolved ONCE. The request then connects to that resolved address: the URL's host
   is replaced by the IP, while the `Host` header and, for https, the TLS SNI and the
   certificate check (httpx's documented `sni_hostname` request extension) keep the
   original name. A second DNS answer (DNS rebinding) is never asked for, so it
   cannot switch the target between the check and the connection.
3. Redirects are not followed: a 3xx is `OutboundRefused` (a redirect could point
   anywhere, and following it would need step 2 again for every hop; a webhook
   receiver can be given its final URL).

Environment proxies are ignored (`trust_env=False`): a proxy would resolve the name
itself, after the check.

`OUTBOUND_ALLOW_PRIVATE` (local development and tests only, never in production)
additionally allows loopback, private (RFC 1918, ULA) and shared (CGNAT) addresses;
link-local (the metadata service lives there), multicast, unspecified and reserved
addresses stay refused with it on.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.checks import CheckMessage, Tags, register
from django.core.checks import Warning as CheckWarning

from core.logging import get_logger

log = get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")

# Named for the message; both are link-local or ULA too, so refused without the names.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
    ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
}
# Allowed with OUTBOUND_ALLOW_PRIVATE (with loopback). Python's `is_private` is broader
# (documentation, benchmarking, reserved ranges), which stay refused either way.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: embeds an IPv4 address


class OutboundError(Exception):
    """The call was not made; may work later (the name did not resolve)."""

    permanent = False

    def __init__(self, reason: str, *, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


class OutboundRefused(OutboundError):
    """The policy said no: the URL or an address it resolves to is not public, or the
    receiver redirected. Retrying cannot help until the URL or its DNS changes."""

    permanent = True


def _allow_private() -> bool:
    return bool(getattr(settings, "OUTBOUND_ALLOW_PRIVATE", False))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4, Teredo client):
    `::ffff:127.0.0.1` reaches 127.0.0.1, and Python 3.11's properties do not unwrap it."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def address_refusal(ip: IPAddress, *, allow_private: bool | None = None) -> str | None:
    """Why `ip` may not be called (a phrase like "loopback"), or None if it may."""
    if allow_private is None:
        allow_private = _allow_private()
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.compressed.split("%")[0])  # drop a scope id
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner = address_refusal(embedded, allow_private=allow_private)
            return f"{inner} (as {embedded})" if inner else None
    if ip in METADATA_ADDRESSES:
        return "the cloud metadata service"
    # Refused unless OUTBOUND_ALLOW_PRIVATE (local development, tests).
    if ip.is_loopback:
        reason = "loopback"
    elif any(ip in network for network in PRIVATE_NETWORKS):
        reason = "private"
    elif ip in SHARED_ADDRESS_SPACE:
        reason = "shared address space (carrier-grade NAT)"
    # Always refused, whatever the setting: nothing a webhook needs is there.
    elif ip.is_unspecified:
        return "unspecified (it means this host)"
    elif ip.is_link_local:
        return "link-local"
    elif ip.is_multicast:
        return "multicast"
    elif ip.is_reserved:
        return "reserved"
    elif not ip.is_global:
        return "not a public address"
    else:
        return None
    return None if allow_private else reason


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses it resolved to, each allowed."""

    url: httpx.URL
    host: str  # ASCII (IDNA) host name or IP literal, no brackets
    port: int
    addresses: tuple[IPAddress, ...]


def _parse(url: str) -> tuple[httpx.URL, str, int]:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise OutboundRefused(f"the URL is not valid ({exc})") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        shown = parsed.scheme or "(none)"
        raise OutboundRefused(f"the scheme {shown!r} is not allowed, only http or https")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise OutboundRefused("the URL has no host")
    if parsed.userinfo:
        raise OutboundRefused("credentials in the URL (user@host) are not allowed")
    if parsed.port is not None and not 0 < parsed.port <= 65535:
        raise OutboundRefused(f"port {parsed.port} is not a valid port")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return parsed, host, port


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise OutboundError(f"{host} could not be resolved ({exc})") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OutboundError(f"{host} could not be resolved (no address)")
    return addresses


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve_public_url(url: str) -> Target:
    """Parse, resolve once, refuse if any address is not allowed.

    Raises `OutboundRefused` (policy) or `OutboundError` (the name did not resolve).
    """
    parsed, host, port = _parse(url)
    addresses = _resolve(host, port)
    literal = _ip_literal(host)
    for ip in addresses:
        reason = address_refusal(ip)
        if reason is not None:
            shown = host if literal == ip else f"{host} resolves to {ip}, which"
            raise OutboundRefused(f"{shown} is {reason}")
    return Target(url=parsed, host=host, port=port, addresses=tuple(addresses))


def validate_public_url(url: str) -> None:
    """Save time: raise `OutboundError` (its `reason` says why) unless `url` is a
    public http(s) address today. Send time checks again (`post_public_url`)."""
    resolve_public_url(url)


def public_url_problem(url: str, *, label: str = "URL") -> str | None:
    """Save time, for a form or an API field: the sentence to show (e.g. "Webhook URL
    must be a public http(s) address; 127.0.0.1 is loopback."), or None if fine."""
    try:
        validate_public_url(url)
    except OutboundError as exc:
        return f"{label} must be a public http(s) address; {exc.reason}."
    return None


def post_public_url(
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout: float,
    verify: Any = True,
) -> httpx.Response:
    """POST to `url`, connecting only to an address checked here (module docstring).

    Resolves once; tries the checked addresses in order while a connection is refused.
    Raises `OutboundRefused` (policy, or a 3xx: not followed), `OutboundError` (the
    name did not resolve), or httpx's errors. `verify` is httpx's (tests pass a CA).
    """
    target = resolve_public_url(url)
    sent_headers = {**headers, "Host": target.url.netloc.decode("ascii")}
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    last_error: httpx.ConnectError | None = None
    with httpx.Client(
        timeout=timeout, follow_redirects=False, trust_env=False, verify=verify
    ) as client:
        for ip in target.addresses:
            pinned = target.url.copy_with(host=str(ip))
            try:
                response = client.post(
                    pinned, content=content, headers=sent_headers, extensions=extensions
                )
            except httpx.ConnectError as exc:
                last_error = exc
                continue
            if response.is_redirect:
                location = response.headers.get("Location", "")[:200]
                raise OutboundRefused(
                    f"the receiver redirected (HTTP {response.status_code} to {location!r}); "
                    "redirects are not followed, configure the final URL",
                    status_code=response.status_code,
                )
            return response
    assert last_error is not None
    raise last_error


# --- startup warning and deploy check ------------------------------------------------------


def warn_if_private_allowed() -> None:
    """Called at startup (core.apps): every process says so in its log while relaxed."""
    if _allow_private():
        log.warning(
            "outbound_allow_private_on",
            detail="webhooks may reach loopback and private addresses; never in production",
        )


@register(Tags.security, deploy=True)
def check_outbound_allow_private(**_: Any) -> list[CheckMessage]:
    """`manage.py check --deploy` warns: the setting opens SSRF to internal addresses."""
    if not _allow_private():
        return []
    return [
        CheckWarning(
            "OUTBOUND_ALLOW_PRIVATE is on: tenant webhooks may reach loopback and private "
            "addresses (Redis, the database, internal services).",
            hint="Only for local development and tests; never in production.",
            id="core.W101",
        )
    ]
