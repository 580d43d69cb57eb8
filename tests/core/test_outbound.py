"""Outbound URL policy (core/outbound.py): what a tenant-chosen URL may reach, checked at
save time and again at send time with one resolution that the connection then uses.

No traffic leaves loopback: public addresses are only validated (never posted to), and
names are answered by a scripted DNS (tests/outbound_fakes.py).
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.checks import run_checks

from core.outbound import OutboundError, OutboundRefused, post_public_url, validate_public_url
from tests.outbound_fakes import http_receiver, install_fake_dns


@pytest.fixture
def strict(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = False


@pytest.fixture
def relaxed(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Any:
    return install_fake_dns(monkeypatch)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8000/hook", "127.0.0.1 is loopback"),
        ("http://[::1]:6379/", "::1 is loopback"),
        ("http://169.254.169.254/latest/meta-data/", "the cloud metadata service"),
        ("http://[fd00:ec2::254]/latest/", "the cloud metadata service"),
        ("http://169.254.10.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://10.0.0.5/hook", "10.0.0.5 is private"),
        ("http://172.16.3.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0:8000/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[::ffff:127.0.0.1]/", "loopback (as 127.0.0.1)"),
        ("http://[::ffff:169.254.169.254]/", "the cloud metadata service"),
        ("http://[64:ff9b::a00:5]/", "private (as 10.0.0.5)"),
        ("http://localhost:8000/", "localhost resolves to 127.0.0.1, which is loopback"),
        ("http://2130706433/", "resolves to 127.0.0.1"),  # 127.0.0.1 as one integer
        ("http://127.1/", "resolves to 127.0.0.1"),
        ("ftp://93.184.216.34/", "scheme 'ftp'"),
        ("file:///etc/passwd", "scheme 'file'"),
        ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme 'gopher'"),
        ("http://93.184.216.34@127.0.0.1/", "credentials"),
        ("http://user:pw@93.184.216.34/", "credentials"),
        ("http:///path-only", "no host"),
        ("http://93.184.216.34:0/", "port 0"),
        ("http://93.184.216.34:70000/", "port 70000"),
    ],
)
def test_refuses_what_is_not_a_public_http_address(strict: None, url: str, why: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        validate_public_url(url)
    assert why in refused.value.reason


def test_refuses_a_name_if_any_of_its_addresses_is_not_public(strict: None, dns: Any) -> None:
    dns.script("internal.test", ["127.0.0.1"])
    dns.script("mixed.test", ["93.184.216.34", "10.0.0.5"])
    dns.script("six.test", ["2606:2800:220:1:248:1893:25c8:1946", "::1"])
    for name, why in [
        ("internal.test", "internal.test resolves to 127.0.0.1, which is loopback"),
        ("mixed.test", "mixed.test resolves to 10.0.0.5, which is private"),
        ("six.test", "six.test resolves to ::1, which is loopback"),
    ]:
        with pytest.raises(OutboundRefused) as refused:
            validate_public_url(f"https://{name}/hook")
        assert refused.value.reason == why


def test_accepts_public_addresses(strict: None, dns: Any) -> None:
    # Only resolved and checked: nothing here connects anywhere.
    dns.script("hooks.partner.test", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    validate_public_url("http://93.184.216.34/hook")
    validate_public_url("https://93.184.216.34:8443/hook?x=1")
    validate_public_url("https://[2606:2800:220:1:248:1893:25c8:1946]/hook")
    validate_public_url("https://hooks.partner.test/assistance")


def test_a_name_that_does_not_resolve_is_an_error_but_not_a_refusal(strict: None, dns: Any) -> None:
    dns.script("gone.test", [])
    with pytest.raises(OutboundError) as error:
        validate_public_url("https://gone.test/hook")
    assert not isinstance(error.value, OutboundRefused) and not error.value.permanent
    assert "gone.test could not be resolved" in error.value.reason


def test_allow_private_opens_loopback_and_private_only(relaxed: None) -> None:
    validate_public_url("http://127.0.0.1:8000/hook")
    validate_public_url("http://[::1]:8000/hook")
    validate_public_url("http://10.0.0.5/hook")
    for url in ("http://169.254.169.254/", "http://[fe80::1]/", "http://0.0.0.0/", "ftp://x/"):
        with pytest.raises(OutboundRefused):
            validate_public_url(url)


def test_deploy_check_warns_while_private_targets_are_allowed(settings: Any) -> None:
    settings.OUTBOUND_ALLOW_PRIVATE = True
    assert "core.W101" in {m.id for m in run_checks(include_deployment_checks=True)}
    settings.OUTBOUND_ALLOW_PRIVATE = False
    assert "core.W101" not in {m.id for m in run_checks(include_deployment_checks=True)}


# --- send time ------------------------------------------------------------------------


def test_send_refuses_before_connecting(strict: None) -> None:
    loopback = r"127\.0\.0\.1 is loopback"
    with http_receiver() as receiver, pytest.raises(OutboundRefused, match=loopback):
        post_public_url(f"{receiver.url}/hook", content=b"{}", headers={}, timeout=5)
    assert receiver.calls == []


def test_send_after_rebinding_is_refused_without_connecting(strict: None, dns: Any) -> None:
    # given a name that was public when saved and now answers loopback
    dns.script("rebind.test", ["93.184.216.34"], ["127.0.0.1"])
    with http_receiver() as receiver:
        url = f"http://rebind.test:{receiver.port}/hook"
        validate_public_url(url)  # save time: public
        with pytest.raises(OutboundRefused, match=r"rebind\.test resolves to 127\.0\.0\.1"):
            post_public_url(url, content=b"{}", headers={}, timeout=5)
    assert receiver.calls == []


def test_send_resolves_once_and_connects_to_the_checked_address(relaxed: None, dns: Any) -> None:
    # given a name whose first answer is 127.0.0.1 and every later one 127.0.0.2, with a
    # receiver on each: a connection that asked DNS again would reach the second
    with http_receiver("127.0.0.1") as checked, http_receiver("127.0.0.2", checked.port) as other:
        dns.script("hook.test", ["127.0.0.1"], ["127.0.0.2"])
        url = f"http://hook.test:{checked.port}/hook?x=1"
        response = post_public_url(url, content=b'{"a": 1}', headers={"X-A": "b"}, timeout=5)
    assert response.status_code == 200
    assert dns.lookups == ["hook.test"]
    assert other.calls == []
    [call] = checked.calls
    assert call["headers"]["Host"] == f"hook.test:{checked.port}"
    assert (call["path"], call["body"], call["headers"]["X-A"]) == ("/hook?x=1", b'{"a": 1}', "b")


def test_redirects_are_not_followed(relaxed: None) -> None:
    with (
        http_receiver() as target,
        http_receiver(status=302, headers={"Location": f"{target.url}/x"}) as first,
        pytest.raises(OutboundRefused, match="redirects are not followed") as refused,
    ):
        post_public_url(f"{first.url}/hook", content=b"{}", headers={}, timeout=5)
    assert refused.value.status_code == 302
    assert len(first.calls) == 1 and target.calls == []


def _tls(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for `name` only, and a client context that
    trusts its CA. (cryptography comes with daphne's autobahn.)"""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "outbound test CA")])

    def build(subject: x509.Name, public: Any) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )

    ca = (
        build(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "leaf.pem", tmp_path / "leaf.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


def test_https_sni_and_certificate_are_checked_against_the_name_not_the_ip(
    relaxed: None, dns: Any, tmp_path: Path
) -> None:
    server_tls, client_tls = _tls(tmp_path, "hook.test")
    dns.script("hook.test", ["127.0.0.1"])
    dns.script("evil.test", ["127.0.0.1"])
    with http_receiver(tls=server_tls) as receiver:
        # the certificate names hook.test: the call connects to 127.0.0.1 and verifies it
        ok = post_public_url(
            f"https://hook.test:{receiver.port}/hook",
            content=b"{}",
            headers={},
            timeout=5,
            verify=client_tls,
        )
        assert ok.status_code == 200
        assert receiver.sni == ["hook.test"]
        assert receiver.calls[0]["headers"]["Host"] == f"hook.test:{receiver.port}"
        # same address, another name: the certificate does not match it, nothing is sent
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            post_public_url(
                f"https://evil.test:{receiver.port}/hook",
                content=b"{}",
                headers={},
                timeout=5,
                verify=client_tls,
            )
    assert len(receiver.calls) == 1
