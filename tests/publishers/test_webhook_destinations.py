"""Where a webhook may send (models/destinations.py) and how the publisher holds to it at send time: every
address a name resolves to is checked, the request goes to the checked address with the URL's Host (and, for
https, the host name for TLS), so DNS rebinding cannot turn a public name into a private address; no proxy
from the environment is used."""

import contextlib
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.routing import Route

from models import destinations
from models.destinations import NonPublicAddress, UnresolvedHost, UnusableUrl, check_url, why_not_public
from publishers import PublishNotSent, PublishRejected, WebhookPublisher, send_notification
from tests.publishers.test_publishers import WEBHOOK_ID, delivery
from tests.support.stack import free_port, serving
from tests.support.webhook_receiver import SECRET, WebhookReceiver, receiving

PUBLIC = "93.184.216.34"


class FakeDns:
    """Answers for some names, in turn (the last answer repeats); other names go to the real resolver."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.asked: list[str] = []

    def set(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns()
    real = destinations.lookup

    async def lookup(host: str, port: int) -> list[str]:
        fake.asked.append(host)
        if host not in fake.answers:
            return await real(host, port)
        answers = fake.answers[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(destinations, "lookup", lookup)
    return fake


# ---- the policy ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address", "kind"),
    [
        ("http://127.0.0.1:7233", "127.0.0.1", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("http://[::1]", "::1", "loopback"),
        ("http://0.0.0.0", "0.0.0.0", "unspecified"),
        ("http://2130706433", "127.0.0.1", "loopback"),
        ("http://0x7f.1/", "127.0.0.1", "loopback"),
        ("http://10.0.0.1", "10.0.0.1", "private"),
        ("http://172.16.5.4", "172.16.5.4", "private"),
        ("http://192.168.1.1", "192.168.1.1", "private"),
        ("http://100.64.0.1", "100.64.0.1", "carrier-grade NAT"),
        ("http://224.0.0.251", "224.0.0.251", "multicast"),
        ("http://240.0.0.1", "240.0.0.1", "reserved"),
        ("http://192.0.2.10", "192.0.2.10", "not globally routable"),
        ("http://[::ffff:127.0.0.1]/", "127.0.0.1", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "169.254.169.254", "link-local"),
        ("http://[64:ff9b::a00:1]/", "10.0.0.1", "private"),
        ("http://[2002:7f00:1::]/", "127.0.0.1", "loopback"),
        ("http://[fd00::1]/", "fd00::1", "unique-local"),
        ("http://[fe80::1]/", "fe80::1", "link-local"),
        ("http://[ff02::1]/", "ff02::1", "multicast"),
        ("http://localhost:8000/", "127.0.0.1", "loopback"),
    ],
)
async def test_every_non_public_address_is_refused_and_named(url: str, address: str, kind: str) -> None:
    with pytest.raises(NonPublicAddress) as caught:
        await check_url(url, allow_private_networks=False)
    message = str(caught.value)
    assert address in message and kind in message and "WEBHOOK_ALLOW_PRIVATE_NETWORKS" in message
    await check_url(url, allow_private_networks=True)  # the opt-in lets it through


@pytest.mark.parametrize(
    "url",
    ["http://8.8.8.8/hook", "https://[2001:4860:4860::8888]:8443/x", "http://[::ffff:8.8.8.8]/", "http://1.1.1.1"],
)
async def test_public_addresses_pass(url: str) -> None:
    destination = await check_url(url, allow_private_networks=False)
    assert destination.addresses and all(why_not_public(ipaddress.ip_address(a)) is None for a in destination.addresses)


async def test_a_name_is_checked_at_every_address_it_resolves_to(dns: FakeDns) -> None:
    dns.set("hooks.example.com", [PUBLIC])
    dns.set("mixed.example.com", [PUBLIC, "10.1.2.3"])
    dns.set("inside.example.com", ["fd12::5"])
    checked = await check_url("https://hooks.example.com/x?token=1", allow_private_networks=False)
    assert checked.addresses == (PUBLIC,) and checked.host_header == "hooks.example.com"
    with pytest.raises(NonPublicAddress, match=r"mixed\.example\.com resolves to 10\.1\.2\.3, a private address"):
        await check_url("https://mixed.example.com/x", allow_private_networks=False)
    with pytest.raises(NonPublicAddress, match="fd12::5, a unique-local address"):
        await check_url("https://inside.example.com/x", allow_private_networks=False)


async def test_only_http_urls_that_resolve_are_usable() -> None:
    unusable = ("ftp://8.8.8.8/x", "file:///etc/passwd", "gopher://8.8.8.8/", "http:///nohost", "http://8.8.8.8:99999/")
    for url in unusable:
        with pytest.raises(UnusableUrl):
            await check_url(url, allow_private_networks=True)
    with pytest.raises(UnresolvedHost, match=r"no-such-host\.invalid does not resolve"):
        await check_url("https://no-such-host.invalid/x", allow_private_networks=True)


# ---- at send time ------------------------------------------------------------------------------------------------


async def test_a_name_that_turns_private_after_it_was_set_is_refused_and_nothing_is_sent(dns: FakeDns) -> None:
    async with receiving("ok") as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        url = f"http://hooks.rebind.test:{port}/hook"
        dns.set("hooks.rebind.test", [PUBLIC], ["127.0.0.1"])  # public when set, loopback when sent
        await check_url(url, allow_private_networks=False)  # what PUT /tenant/webhook checks
        publisher = WebhookPublisher(url, SECRET, timeout_seconds=0.5)
        with pytest.raises(PublishRejected, match=r"non-public address.*resolves to 127\.0\.0\.1, a loopback"):
            await publisher.publish(delivery(), WEBHOOK_ID)
        with pytest.raises(PublishRejected, match="non-public address"):
            await send_notification(url, SECRET, "approval.reminder", {}, timeout_seconds=0.5)
    assert receiver.requests == []


async def test_a_private_address_is_refused_at_send_time_without_the_opt_in() -> None:
    async with receiving("ok") as receiver:
        with pytest.raises(PublishRejected, match=r"non-public address: 127\.0\.0\.1 is a loopback address"):
            await WebhookPublisher(receiver.url, SECRET, timeout_seconds=0.5).publish(delivery(), WEBHOOK_ID)
    assert receiver.requests == []


async def test_with_the_opt_in_a_name_is_sent_to_the_checked_address_with_its_host(dns: FakeDns) -> None:
    async with receiving("ok") as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        dns.set("receiver.test", ["127.0.0.1"])
        url = f"http://receiver.test:{port}/hook?token=abc"
        publisher = WebhookPublisher(url, SECRET, timeout_seconds=0.5, allow_private_networks=True)
        receipt = await publisher.publish(delivery(), WEBHOOK_ID)
    assert receipt.external_id == "ext-1"
    [request] = receiver.requests
    assert request.verified and request.headers["host"] == f"receiver.test:{port}"
    assert dns.asked.count("receiver.test") == 1  # resolved once, by the check; the connection used its answer


async def test_no_proxy_from_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    async with receiving("ok") as receiver:
        publisher = WebhookPublisher(receiver.url, SECRET, timeout_seconds=0.5, allow_private_networks=True)
        assert (await publisher.publish(delivery(), WEBHOOK_ID)).external_id == "ext-1"


# ---- https: the connection goes to the address, TLS is verified against the name ------------------------------


def _certificates(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for `name` signed by it: (CA file, certificate file, key file)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "content-pipeline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_file, cert_file, key_file


@contextlib.asynccontextmanager
async def serving_tls(receiver: WebhookReceiver, cert_file: Path, key_file: Path) -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    async with serving(app, ssl_certfile=str(cert_file), ssl_keyfile=str(key_file)) as base_url:
        yield int(base_url.rsplit(":", 1)[1])


async def test_https_goes_to_the_checked_address_and_verifies_the_certificate_for_the_name(
    dns: FakeDns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, cert_file, key_file = _certificates(tmp_path, "hooks.tls.test")
    monkeypatch.setattr(certifi, "where", lambda: str(ca_file))  # httpx's trust store: our test CA
    dns.set("hooks.tls.test", ["127.0.0.1"])
    dns.set("other.tls.test", ["127.0.0.1"])
    receiver = WebhookReceiver()
    async with serving_tls(receiver, cert_file, key_file) as port:
        named = WebhookPublisher(
            f"https://hooks.tls.test:{port}/hook", SECRET, timeout_seconds=2, allow_private_networks=True
        )
        receipt = await named.publish(delivery(), WEBHOOK_ID)
        # Same address, another name: the certificate does not match it, so nothing is sent.
        other = WebhookPublisher(
            f"https://other.tls.test:{port}/hook", SECRET, timeout_seconds=2, allow_private_networks=True
        )
        with pytest.raises(PublishNotSent, match="could not connect"):
            await other.publish(delivery(), WEBHOOK_ID)
    assert receipt.external_id == "ext-1"
    [request] = receiver.requests
    assert request.verified and request.headers["host"] == f"hooks.tls.test:{port}"
