"""The Bluesky publisher against a real PDS (@atproto/pds with a local PLC, tests/support/pds_server.py): connecting
a channel, posts with images, link cards and facets read back from the repository, sessions renewed, and the
never-twice guarantee when the PDS goes away before, during or after the post's createRecord."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from atproto_client.client.session import Session
from atproto_client.exceptions import BadRequestError, RateLimitExceededError, RequestException
from atproto_client.models.common import XrpcError
from atproto_client.request import Response
from PIL import Image

from models.enums import MediaKind, Platform
from publishers.base import Delivery, MediaRef, PublishNotSent, PublishOutcomeUnknown, PublishRejected, Receipt
from publishers.bluesky import (
    IMAGE_MAX_BYTES,
    POST_COLLECTION,
    RULES,
    BlueskyPublisher,
    Stage,
    check,
    connect,
    publish_error,
    record_key,
)
from publishers.channel import ChannelCredentialsRejected, ChannelSession, ChannelUnavailable, Credentials
from tests.support.pds_fixtures import pds_fixture, pds_session_fixture  # noqa: F401
from tests.support.pds_server import PdsAccount, PdsServer
from tests.support.stack import free_port

TIMEOUT = 30.0  # per request; generous for a busy machine, never reached when things work
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
ROOT = Path(__file__).resolve().parents[2]


# ---- helpers ---------------------------------------------------------------------------------------------


@dataclass
class Channel:
    """A connected channel as the channel layer would hold it: credentials, saves, media by id."""

    credentials: Credentials
    media: dict[uuid.UUID, bytes] = field(default_factory=dict)
    saved: list[Credentials] = field(default_factory=list)

    def session(self) -> ChannelSession:
        async def save(credentials: Credentials) -> None:
            self.saved.append(dict(credentials))
            self.credentials = dict(credentials)

        async def read_media(ref: MediaRef) -> bytes:
            return self.media[ref.id]

        return ChannelSession(credentials=dict(self.credentials), save=save, read_media=read_media)

    def publisher(self) -> BlueskyPublisher:
        return BlueskyPublisher(self.session(), timeout_seconds=TIMEOUT)


@dataclass
class Poster:
    account: PdsAccount
    app_password: str
    channel: Channel


async def poster(pds: PdsServer, name: str = "poster", *, service: str | None = None) -> Poster:
    account = pds.create_account(name)
    app_password = pds.create_app_password(account)
    _, credentials = await connect(service or pds.url, account.handle, app_password, timeout_seconds=TIMEOUT)
    return Poster(account, app_password, Channel(credentials))


def delivery(text: str, media: list[MediaRef] | None = None, **fields: str) -> Delivery:
    return Delivery(
        social_post_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        company_id=uuid.uuid4(),
        company_name="Acme",
        blog_post_id=uuid.uuid4(),
        platform=Platform.BLUESKY,
        text=text,
        media=media or [],
        **fields,
    )


def png(width: int, height: int, *, noise: bool = False, alpha: bool = False) -> bytes:
    """A PNG; with noise it hardly compresses (a 1000x800 one is about 2.4 MB)."""
    mode = "RGBA" if alpha else "RGB"
    if noise:
        image = Image.frombytes(mode, (width, height), os.urandom(width * height * len(mode)))
    else:
        image = Image.new(mode, (width, height), (30, 120, 200, 128) if alpha else (30, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def image_ref(channel: Channel, data: bytes, alt: str) -> MediaRef:
    ref = MediaRef(
        id=uuid.uuid4(), url="https://media.example/x.png", kind=MediaKind.IMAGE, mime_type="image/png", alt_text=alt
    )
    channel.media[ref.id] = data
    return ref


def posts(pds: PdsServer, did: str) -> list[dict]:
    return pds.list_records(did, POST_COLLECTION)


def expired_session(pds: PdsServer, credentials: Credentials) -> str:
    """The stored session with its access token expired (the refresh token as it was)."""
    session = Session.decode(credentials["session"])
    session.access_jwt = pds.expired_access_token(session.did)
    return session.export()


class CutAtCreateRecord:
    """A TCP proxy to the PDS that cuts the one connection carrying the next createRecord: before the PDS gets it
    (`deliver=False`) or once the PDS has answered, before the answer reaches the client (`deliver=True`). With
    `down_after_cut`, it then refuses connections until `restore()`: the PDS is out of reach for the follow-up."""

    MARK = b"/xrpc/com.atproto.repo.createRecord"

    def __init__(self, upstream_port: int, *, deliver: bool, down_after_cut: bool = False) -> None:
        self.upstream_port = upstream_port
        self.deliver = deliver
        self.down_after_cut = down_after_cut
        self.armed = True
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        self._stop_listening()
        for writer in list(self._writers):
            writer.transport.abort()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.add(client_writer)
        try:
            await self._forward(client_reader, client_writer)
        finally:
            self._writers.discard(client_writer)
            client_writer.transport.abort()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _forward(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            return
        self._writers.add(upstream_writer)
        answered_post = asyncio.Event()

        def cut_both() -> None:
            self.cut = True
            self.armed = False
            client_writer.transport.abort()
            upstream_writer.transport.abort()
            if self.down_after_cut:
                self._stop_listening()

        async def to_pds() -> None:
            while data := await client_reader.read(65536):
                if self.armed and self.MARK in data:
                    if not self.deliver:
                        cut_both()
                        return
                    answered_post.set()
                upstream_writer.write(data)
                await upstream_writer.drain()
            raise ConnectionResetError("client closed")

        async def to_client() -> None:
            while data := await upstream_reader.read(65536):
                if answered_post.is_set():
                    cut_both()  # the PDS has done the work; its answer is lost on the way
                    return
                client_writer.write(data)
                await client_writer.drain()
            raise ConnectionResetError("pds closed")

        try:
            async with asyncio.TaskGroup() as both:
                both.create_task(to_pds())
                both.create_task(to_client())
        except* (OSError, ConnectionError):
            pass
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.transport.abort()


@contextlib.asynccontextmanager
async def cutting_proxy(
    pds: PdsServer, *, deliver: bool, down_after_cut: bool = False
) -> AsyncIterator[CutAtCreateRecord]:
    proxy = CutAtCreateRecord(pds.port, deliver=deliver, down_after_cut=down_after_cut)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# ---- connecting and checking a channel ---------------------------------------------------------------------


async def test_connect_returns_the_account_and_the_credentials_to_keep(pds: PdsServer) -> None:
    account = pds.create_account("alice")
    app_password = pds.create_app_password(account)

    found, credentials = await connect(
        pds.url + "/", "@" + account.handle.upper(), app_password, timeout_seconds=TIMEOUT
    )

    assert found.id == account.did
    assert found.handle == account.handle
    assert found.url == f"https://bsky.app/profile/{account.handle}"
    assert set(credentials) == {"service", "handle", "appPassword", "did", "session"}
    assert credentials["service"] == pds.url
    assert credentials["did"] == account.did
    assert credentials["appPassword"] == app_password
    assert Session.decode(credentials["session"]).did == account.did
    assert_no_secret(repr(found), app_password, credentials["session"])
    assert RULES.max_chars == 300 and RULES.unit == "graphemes" and RULES.image_max_bytes == IMAGE_MAX_BYTES


async def test_a_wrong_app_password_is_refused_and_nothing_is_saved(
    pds: PdsServer, caplog: pytest.LogCaptureFixture
) -> None:
    account = pds.create_account("mallory")
    wrong = "abcd-efgh-ijkl-mnop"

    with pytest.raises(ChannelCredentialsRejected) as refused:
        await connect(pds.url, account.handle, wrong, timeout_seconds=TIMEOUT)
    assert "Bluesky refused the handle and app password" in str(refused.value)
    assert_no_secret(str(refused.value), wrong)

    channel = Channel({"service": pds.url, "handle": account.handle, "appPassword": wrong, "did": account.did})
    with pytest.raises(ChannelCredentialsRejected):
        await check(channel.session(), timeout_seconds=TIMEOUT)
    with pytest.raises(ChannelCredentialsRejected):
        await channel.publisher().publish(delivery("hello"), "d1")
    assert channel.saved == []
    assert posts(pds, account.did) == []
    assert_no_secret(caplog.text, wrong)


async def test_connect_refuses_a_malformed_service_or_handle() -> None:
    for service in ("bsky.social", "ftp://bsky.social", "https://", "https://user:pw@bsky.social"):
        with pytest.raises(ValueError, match="service"):
            await connect(service, "alice.bsky.social", "abcd-efgh-ijkl-mnop", timeout_seconds=TIMEOUT)
    for handle in ("alice", "alice@bsky.social", "al ice.bsky.social", "alicé.bsky.social", ""):
        with pytest.raises(ValueError, match="handle"):
            await connect("https://bsky.social", handle, "abcd-efgh-ijkl-mnop", timeout_seconds=TIMEOUT)
    with pytest.raises(ValueError, match="app password"):
        await connect("https://bsky.social", "alice.bsky.social", " ", timeout_seconds=TIMEOUT)


async def test_connect_to_a_service_that_does_not_answer_is_unavailable() -> None:
    with pytest.raises(ChannelUnavailable) as unavailable:
        await connect(f"http://127.0.0.1:{free_port()}", "alice.test", "abcd-efgh-ijkl-mnop", timeout_seconds=TIMEOUT)
    assert "abcd-efgh-ijkl-mnop" not in str(unavailable.value)


async def test_check_resumes_the_stored_session_without_saving(pds: PdsServer) -> None:
    carol = await poster(pds, "carol")

    account = await check(carol.channel.session(), timeout_seconds=TIMEOUT)

    assert (account.id, account.handle) == (carol.account.did, carol.account.handle)
    assert carol.channel.saved == []


async def test_check_with_a_dead_session_logs_in_again_and_saves(pds: PdsServer) -> None:
    dave = await poster(pds, "dave")
    stored = dave.channel.credentials["session"]
    pds.delete_session(Session.decode(stored).refresh_jwt)
    dave.channel.credentials["session"] = expired_session(pds, dave.channel.credentials)

    account = await check(dave.channel.session(), timeout_seconds=TIMEOUT)

    assert account.id == dave.account.did
    assert len(dave.channel.saved) == 1
    renewed = Session.decode(dave.channel.saved[0]["session"])
    assert renewed.refresh_jwt != Session.decode(stored).refresh_jwt
    assert dave.channel.saved[0]["appPassword"] == dave.app_password


async def test_check_when_the_pds_is_stopped_is_unavailable(pds: PdsServer) -> None:
    erin = await poster(pds, "erin")
    pds.stop_pds()
    try:
        with pytest.raises(ChannelUnavailable):
            await check(erin.channel.session(), timeout_seconds=TIMEOUT)
    finally:
        pds.start_pds()
    assert erin.channel.saved == []


# ---- posts -----------------------------------------------------------------------------------------------


async def test_a_post_with_two_images_links_hashtags_and_mentions(pds: PdsServer) -> None:
    frank = await poster(pds, "frank")
    grace = pds.create_account("grace")
    channel = frank.channel
    large = png(1000, 800, noise=True)
    assert len(large) > IMAGE_MAX_BYTES  # it must be recompressed
    small = png(300, 200, alpha=True)
    refs = [image_ref(channel, large, "Noise, a lot of it"), image_ref(channel, small, "A blue rectangle")]
    link = "https://example.com/blog/launch?ref=bsky"
    text = (
        f"Café déjà vu 🎉👍🏽 — naïve résumé: {link}. #launch #2024 #Été thanks @{grace.handle} and @nobody-here.test!"
    )
    post = delivery(text, refs, blog_title="Our launch")

    receipt = await channel.publisher().publish(post, "delivery-1")

    rkey = record_key(post.social_post_id)
    assert receipt == Receipt(
        external_id=f"at://{frank.account.did}/{POST_COLLECTION}/{rkey}",
        url=f"https://bsky.app/profile/{frank.account.handle}/post/{rkey}",
        status_code=200,
    )
    stored = pds.get_record(frank.account.did, POST_COLLECTION, rkey)
    assert stored is not None
    value = stored["value"]
    assert value["text"] == text
    assert value["createdAt"].endswith("Z")
    encoded = text.encode("utf-8")
    spans = {
        encoded[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode("utf-8"): facet["features"][0]
        for facet in value["facets"]
    }
    assert spans == {
        link: {"$type": "app.bsky.richtext.facet#link", "uri": link},
        "#launch": {"$type": "app.bsky.richtext.facet#tag", "tag": "launch"},
        "#Été": {"$type": "app.bsky.richtext.facet#tag", "tag": "Été"},
        f"@{grace.handle}": {"$type": "app.bsky.richtext.facet#mention", "did": grace.did},
    }
    starts = [facet["index"]["byteStart"] for facet in value["facets"]]
    assert starts == sorted(starts)

    embed = value["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    assert [image["alt"] for image in embed["images"]] == ["Noise, a lot of it", "A blue rectangle"]
    for image, (width, height) in zip(embed["images"], [(1000, 800), (300, 200)], strict=True):
        assert image["image"]["mimeType"] == "image/jpeg"
        assert image["image"]["size"] <= IMAGE_MAX_BYTES
        blob = pds.get_blob(frank.account.did, image["image"]["ref"]["$link"])
        assert blob[:3] == b"\xff\xd8\xff" and len(blob) == image["image"]["size"]
        with Image.open(io.BytesIO(blob)) as uploaded:
            assert uploaded.format == "JPEG"
            ratio = image["aspectRatio"]
            assert (ratio["width"], ratio["height"]) == uploaded.size
            assert abs(uploaded.width / uploaded.height - width / height) < 0.01


async def test_a_link_without_an_image_gets_a_link_card(pds: PdsServer) -> None:
    heidi = await poster(pds, "heidi")
    with_title = delivery(
        "New on the blog: https://example.com/posts/42 (5 min read)",
        blog_title="How we ship",
        blog_summary="Small batches, real servers in tests.",
    )
    without_title = delivery("Read https://example.com/posts/43")

    for post in (with_title, without_title):
        await heidi.channel.publisher().publish(post, "d")

    cards = [
        pds.get_record(heidi.account.did, POST_COLLECTION, record_key(post.social_post_id))["value"]["embed"]  # type: ignore[index]
        for post in (with_title, without_title)
    ]
    assert cards[0] == {
        "$type": "app.bsky.embed.external",
        "external": {
            "$type": "app.bsky.embed.external#external",
            "uri": "https://example.com/posts/42",
            "title": "How we ship",
            "description": "Small batches, real servers in tests.",
        },
    }
    assert cards[1]["external"] == {
        "$type": "app.bsky.embed.external#external",
        "uri": "https://example.com/posts/43",
        "title": "https://example.com/posts/43",
        "description": "",
    }


async def test_a_post_of_300_graphemes_is_taken_and_one_of_301_is_refused(pds: PdsServer) -> None:
    ivan = await poster(pds, "ivan")
    longest = delivery("👍🏽" * 300)  # 300 graphemes, 600 code points, 2400 bytes
    too_long = delivery("👍🏽" * 300 + "!")

    await ivan.channel.publisher().publish(longest, "d1")
    with pytest.raises(PublishRejected, match="301 graphemes"):
        await ivan.channel.publisher().publish(too_long, "d2")

    assert [record["uri"].rsplit("/", 1)[1] for record in posts(pds, ivan.account.did)] == [
        record_key(longest.social_post_id)
    ]


async def test_publishing_twice_makes_one_record_with_the_same_receipt(pds: PdsServer) -> None:
    judy = await poster(pds, "judy")
    post = delivery("Once only https://example.com/once")

    first = await judy.channel.publisher().publish(post, "d1")
    again = await judy.channel.publisher().publish(post, "d1")
    both = await asyncio.gather(*(judy.channel.publisher().publish(post, "d1") for _ in range(2)))

    assert again == first and list(both) == [first, first]
    assert len(posts(pds, judy.account.did)) == 1
    assert await judy.channel.publisher().find(post, "d1") == first


async def test_racing_sends_of_a_new_post_make_one_record(pds: PdsServer) -> None:
    # Both may pass the check for an existing record; the second create at the key is refused by the PDS and
    # answered with the record that is there.
    kim = await poster(pds, "kim")
    post = delivery("Racing")

    receipts = await asyncio.gather(*(kim.channel.publisher().publish(post, "d1") for _ in range(3)))

    assert len({r.model_dump_json() for r in receipts}) == 1
    assert len(posts(pds, kim.account.did)) == 1


async def test_find_tells_whether_the_post_exists(pds: PdsServer) -> None:
    leo = await poster(pds, "leo")
    post = delivery("Found")

    assert await leo.channel.publisher().find(post, "d1") is None
    receipt = await leo.channel.publisher().publish(post, "d1")
    assert await leo.channel.publisher().find(post, "d1") == receipt


# ---- sessions --------------------------------------------------------------------------------------------


async def test_an_expired_access_token_is_refreshed_and_the_new_session_saved(pds: PdsServer) -> None:
    mia = await poster(pds, "mia")
    old = Session.decode(mia.channel.credentials["session"])
    mia.channel.credentials["session"] = expired_session(pds, mia.channel.credentials)

    await mia.channel.publisher().publish(delivery("After a refresh"), "d1")

    assert len(mia.channel.saved) == 1
    saved = mia.channel.saved[0]
    renewed = Session.decode(saved["session"])
    assert renewed.refresh_jwt != old.refresh_jwt
    assert renewed.access_jwt_payload.exp is not None and renewed.access_jwt_payload.exp > time.time() + 600
    assert {key: saved[key] for key in ("service", "handle", "appPassword", "did")} == {
        "service": pds.url,
        "handle": mia.account.handle,
        "appPassword": mia.app_password,
        "did": mia.account.did,
    }
    assert len(posts(pds, mia.account.did)) == 1


async def test_a_session_deleted_on_the_server_logs_in_again_with_the_app_password(
    pds: PdsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    ned = await poster(pds, "ned")
    old = Session.decode(ned.channel.credentials["session"])
    pds.delete_session(old.refresh_jwt)
    ned.channel.credentials["session"] = expired_session(pds, ned.channel.credentials)

    await ned.channel.publisher().publish(delivery("After a new login"), "d1")

    assert len(ned.channel.saved) == 1
    renewed = Session.decode(ned.channel.saved[0]["session"])
    assert renewed.refresh_jwt != old.refresh_jwt
    assert len(posts(pds, ned.account.did)) == 1
    assert "logging in again" in caplog.text
    assert_no_secret(caplog.text, ned.app_password, old.refresh_jwt, renewed.access_jwt, renewed.refresh_jwt)


async def test_a_dead_session_and_a_wrong_app_password_need_a_person(pds: PdsServer) -> None:
    olga = await poster(pds, "olga")
    olga.channel.credentials["session"] = "not:::a:::session"
    olga.channel.credentials["appPassword"] = "wxyz-wxyz-wxyz-wxyz"

    with pytest.raises(ChannelCredentialsRejected) as refused:
        await olga.channel.publisher().publish(delivery("Never"), "d1")

    assert isinstance(refused.value, PublishNotSent)
    assert olga.channel.saved == []
    assert posts(pds, olga.account.did) == []


# ---- the PDS going away ----------------------------------------------------------------------------------


async def test_a_stopped_pds_means_not_sent(pds: PdsServer) -> None:
    pat = await poster(pds, "pat")
    post = delivery("While it is down")
    pds.stop_pds()
    try:
        with pytest.raises(PublishNotSent) as not_sent:
            await pat.channel.publisher().publish(post, "d1")
        assert not isinstance(not_sent.value, ChannelCredentialsRejected)
        with pytest.raises(PublishNotSent):
            await pat.channel.publisher().find(post, "d1")
    finally:
        pds.start_pds()
    assert await pat.channel.publisher().find(post, "d1") is None
    await pat.channel.publisher().publish(post, "d1")
    assert len(posts(pds, pat.account.did)) == 1


async def test_an_answer_lost_after_the_record_was_created_is_recognised_at_once(pds: PdsServer) -> None:
    # The connection breaks after the PDS created the record; the PDS is still reachable, so the publisher asks for
    # the record at the key and answers with its receipt instead of an unknown outcome.
    async with cutting_proxy(pds, deliver=True) as proxy:
        sam = await poster(pds, "sam", service=proxy.url)
        post = delivery("Answer lost, record there")

        receipt = await sam.channel.publisher().publish(post, "d1")

        assert proxy.cut
        assert receipt.external_id == f"at://{sam.account.did}/{POST_COLLECTION}/{record_key(post.social_post_id)}"
    assert len(posts(pds, sam.account.did)) == 1


async def test_an_answer_lost_with_the_pds_out_of_reach_is_found_later_and_never_posted_twice(pds: PdsServer) -> None:
    async with cutting_proxy(pds, deliver=True, down_after_cut=True) as proxy:
        quinn = await poster(pds, "quinn", service=proxy.url)
        channel = quinn.channel
        post = delivery("Lost answer https://example.com/lost", [image_ref(channel, png(640, 480), "A picture")])

        with pytest.raises(PublishOutcomeUnknown):
            await channel.publisher().publish(post, "d1")
        assert proxy.cut
        with pytest.raises(PublishNotSent):
            await channel.publisher().find(post, "d1")

        # The PDS restarts before it is reachable again: its data holds the post.
        pds.stop_pds()
        pds.start_pds()
        await proxy.restore()
        found = await channel.publisher().find(post, "d1")
        assert found is not None
        assert found.external_id == f"at://{quinn.account.did}/{POST_COLLECTION}/{record_key(post.social_post_id)}"

        assert await channel.publisher().publish(post, "d1") == found
    assert len(posts(pds, quinn.account.did)) == 1


async def test_a_create_cut_before_the_pds_got_it_is_not_found_and_then_posted_once(pds: PdsServer) -> None:
    async with cutting_proxy(pds, deliver=False) as proxy:
        rita = await poster(pds, "rita", service=proxy.url)
        channel = rita.channel
        post = delivery("Cut on the way", [image_ref(channel, png(320, 240), "Another picture")])

        with pytest.raises(PublishOutcomeUnknown):
            await channel.publisher().publish(post, "d1")
        assert proxy.cut
        assert posts(pds, rita.account.did) == []  # blobs were uploaded, the record never arrived

        assert await channel.publisher().find(post, "d1") is None
        receipt = await channel.publisher().publish(post, "d1")
        assert await channel.publisher().publish(post, "d1") == receipt
    records = posts(pds, rita.account.did)
    assert len(records) == 1
    assert records[0]["value"]["embed"]["images"][0]["alt"] == "Another picture"


# ---- record keys and error sorting -----------------------------------------------------------------------


def test_record_key_is_a_stable_tid_of_the_social_post() -> None:
    ids = [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), *(uuid.uuid4() for _ in range(500))]
    keys = [record_key(post_id) for post_id in ids]

    assert all(TID.match(key) for key in keys)
    assert len(set(keys)) == len(keys)
    assert [record_key(post_id) for post_id in ids] == keys
    # The same in another process (no per-process salt or hash seed).
    script = f"import uuid; from publishers.bluesky import record_key; print(record_key(uuid.UUID('{ids[2]}')))"
    other = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == keys[2]
    # Its timestamp lies in the past: 2023 or 2024.
    value = 0
    for char in keys[2]:
        value = value * 32 + "234567abcdefghijklmnopqrstuvwxyz".index(char)
    assert 2023 <= time.gmtime((value >> 10) / 1_000_000).tm_year <= 2024


def answer(status: int, error: str = "", message: str = "", headers: dict[str, str] | None = None) -> Response:
    content = XrpcError(error=error, message=message) if error else None
    return Response(success=False, status_code=status, content=content, headers=headers or {})


def test_errors_are_sorted_by_whether_the_post_may_exist() -> None:
    reset = int(time.time()) + 120
    limited = RateLimitExceededError(answer(429, "RateLimitExceeded", "slow down", {"ratelimit-reset": str(reset)}))
    error = publish_error(limited, stage=Stage.POSTING, what="createRecord")
    assert isinstance(error, PublishNotSent) and error.retry_after is not None and 100 < error.retry_after <= 120
    retry_after = RateLimitExceededError(answer(429, "RateLimitExceeded", "", {"retry-after": "7"}))
    assert publish_error(retry_after, stage=Stage.POSTING, what="createRecord").retry_after == 7  # type: ignore[attr-defined]

    refused = publish_error(BadRequestError(answer(400, "InvalidRequest", "bad text")), stage=Stage.POSTING, what="x")
    assert isinstance(refused, PublishRejected) and "InvalidRequest: bad text" in str(refused)
    for stage, expected in ((Stage.POSTING, PublishOutcomeUnknown), (Stage.BEFORE_POSTING, PublishNotSent)):
        assert type(publish_error(RequestException(answer(500)), stage=stage, what="x")) is expected
        assert type(publish_error(RequestException(answer(503)), stage=stage, what="x")) is expected
