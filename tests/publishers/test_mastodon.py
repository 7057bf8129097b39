"""The Mastodon publisher and channel against a local server that speaks Mastodon's client API over real HTTP: the
OAuth dance with PKCE, the instance's rules, posting with images the instance processes asynchronously,
Idempotency-Key on a retry after an unknown outcome, how each failure is sorted, and that no secret leaks."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from models.channels import mastodon_authorization_url as authorization_url
from models.channels import pkce_pair
from models.enums import MediaKind, Platform
from publishers.base import Delivery, MediaRef, PublishError, PublishNotSent, PublishOutcomeUnknown, PublishRejected
from publishers.channel import (
    ChannelAccount,
    ChannelCredentialsRejected,
    ChannelSession,
    ChannelUnavailable,
    Credentials,
    PlatformRules,
)
from publishers.mastodon import (
    DEFAULT_RULES,
    SCOPES,
    InstanceRefused,
    MastodonPublisher,
    check,
    counted_length,
    exchange_code,
    instance_rules,
    normalize_instance,
    register_app,
    revoke,
)
from tests.support.mastodon_fixtures import mastodon_fixture, mastodon_session_fixture  # noqa: F401
from tests.support.mastodon_server import (
    APPS,
    AUTHORIZE,
    MEDIA,
    MEDIA_STATUS,
    STATUSES,
    TOKEN,
    VERIFY_CREDENTIALS,
    Fault,
    MastodonServer,
    dropped_after,
    dropped_before,
    failing,
    failing_after,
    follow_authorization,
    query_of,
    rate_limited,
    slow,
)
from tests.support.provider_server import tiny_png
from tests.support.stack import free_port

# Generous: the machine running the suite may be busy. Only the slow-answer test waits for a timeout.
TIMEOUT = 20.0
REDIRECT_URI = "https://studio.example/api/v1/channels/callback/mastodon"


# ---- helpers -------------------------------------------------------------------------------------------------


def image(alt_text: str = "", mime_type: str = "image/png") -> MediaRef:
    return MediaRef(
        id=uuid.uuid4(),
        url=f"https://media.example/{uuid.uuid4()}.png",
        kind=MediaKind.IMAGE,
        mime_type=mime_type,
        alt_text=alt_text,
    )


def delivery(text: str = "Robots that sort parcels, and why it matters. #robotics", **overrides: object) -> Delivery:
    values: dict[str, object] = {
        "social_post_id": uuid.uuid4(),
        "tenant_id": uuid.uuid4(),
        "company_id": uuid.uuid4(),
        "company_name": "Acme Robotics",
        "blog_post_id": uuid.uuid4(),
        "platform": Platform.MASTODON,
        "text": text,
        "publish_at": datetime(2026, 3, 12, 8, 10, tzinfo=UTC),
        **overrides,
    }
    return Delivery.model_validate(values)


def reader(files: dict[uuid.UUID, bytes] | None = None) -> Callable[[MediaRef], Awaitable[bytes]]:
    async def read_media(ref: MediaRef) -> bytes:
        return (files or {}).get(ref.id, tiny_png())

    return read_media


async def keep(credentials: Credentials) -> None:
    return None


def session_for(
    mastodon: MastodonServer,
    token: str | None = None,
    *,
    rules: PlatformRules | None = None,
    files: dict[uuid.UUID, bytes] | None = None,
    instance: str | None = None,
) -> ChannelSession:
    credentials = {"instance": instance or mastodon.base_url, "accessToken": token or mastodon.issue_token()}
    return ChannelSession(credentials=credentials, save=keep, read_media=reader(files), rules=rules)


def publisher_for(session: ChannelSession, **options: float) -> MastodonPublisher:
    return MastodonPublisher(
        session, timeout_seconds=options.pop("timeout_seconds", TIMEOUT), allow_private_networks=True, **options
    )


async def connect(mastodon: MastodonServer) -> tuple[ChannelAccount, Credentials, PlatformRules, str]:
    """The whole OAuth dance as the API runs it; also returns the PKCE verifier (a secret of the dance)."""
    app = await register_app(
        mastodon.base_url,
        REDIRECT_URI,
        timeout_seconds=TIMEOUT,
        allow_private_networks=True,
        website="https://studio.example",
    )
    verifier, challenge = pkce_pair()
    url = authorization_url(mastodon.base_url, app["clientId"], REDIRECT_URI, "state-123", challenge)
    back = query_of(await follow_authorization(url))
    assert back["state"] == "state-123"
    account, credentials, rules = await exchange_code(
        mastodon.base_url,
        app["clientId"],
        app["clientSecret"],
        REDIRECT_URI,
        back["code"],
        verifier,
        timeout_seconds=TIMEOUT,
        allow_private_networks=True,
    )
    return account, credentials, rules, verifier


# ---- instance addresses, PKCE, counting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("mastodon.social", "https://mastodon.social"),
        ("https://mastodon.social/", "https://mastodon.social"),
        ("  HTTPS://Mastodon.Social  ", "https://mastodon.social"),
        ("https://mastodon.social:443", "https://mastodon.social"),
        ("https://social.example:8443/", "https://social.example:8443"),
        ("bücher.social", "https://xn--bcher-kva.social"),
    ],
)
def test_an_instance_is_normalized_to_its_base_url(typed: str, expected: str) -> None:
    assert normalize_instance(typed) == expected


def test_http_is_only_for_local_instances() -> None:
    assert normalize_instance("http://127.0.0.1:3000/", allow_private_networks=True) == "http://127.0.0.1:3000"
    with pytest.raises(ValueError, match="https"):
        normalize_instance("http://mastodon.social")


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("", "name the Mastodon instance"),
        ("https://mastodon.social/@alice", "without a path"),
        ("https://mastodon.social/?x=1", "without a query"),
        ("https://mastodon.social/#top", "without a query or fragment"),
        ("https://alice:secret@mastodon.social", "user name or password"),
        ("@alice@mastodon.social", "not the account"),
        ("ftp://mastodon.social", "https://"),
        ("https://", "must name a host"),
        ("mastodon .social", "spaces"),
    ],
)
def test_an_unusable_instance_address_is_refused_in_words(typed: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        normalize_instance(typed)


def test_pkce_challenge_and_authorization_url() -> None:
    verifier, challenge = pkce_pair()
    assert 43 <= len(verifier) <= 128 and challenge != verifier and "=" not in challenge
    url = authorization_url("https://mastodon.social", "client-1", REDIRECT_URI, "st", challenge)
    assert url.startswith("https://mastodon.social/oauth/authorize?")
    assert query_of(url) == {
        "response_type": "code",
        "client_id": "client-1",
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPES,
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }


def test_links_count_as_23_and_remote_mentions_as_the_user_name() -> None:
    rules = DEFAULT_RULES
    link = "https://example.com/" + "a" * 200
    assert counted_length(f"Read {link} now", rules) == len("Read ") + 23 + len(" now")
    assert counted_length(f"({link}).", rules) == 1 + 23 + 2  # sentence punctuation is not part of the link
    assert counted_length("hi @bob@example.social and @carol", rules) == len("hi @bob and @carol")
    assert counted_length("mail me: bob@example.com", rules) == len("mail me: bob@example.com")
    assert counted_length("👩‍💻 ok", rules) == 6  # code points; Mastodon counts 4 graphemes, never more
    assert counted_length("👩‍💻 ok", rules.model_copy(update={"unit": "graphemes"})) == 4


# ---- connecting: the OAuth dance ---------------------------------------------------------------------------------


async def test_the_oauth_dance_connects_an_account_with_its_rules(mastodon: MastodonServer) -> None:
    account, credentials, rules, verifier = await connect(mastodon)

    assert account == ChannelAccount(
        id="109000000000000001",
        handle=f"@alice@127.0.0.1:{mastodon.port}",
        display_name="Alice Example",
        url=f"{mastodon.base_url}/@alice",
    )
    assert set(credentials) == {"instance", "accessToken", "clientId", "clientSecret"}
    assert credentials["instance"] == mastodon.base_url
    assert rules == PlatformRules(max_chars=500, url_length=23, max_images=4, image_max_bytes=16 * 1024 * 1024)

    registered = mastodon.requests_for(APPS)[0].json
    assert registered["client_name"] == "content-pipeline"
    assert registered["redirect_uris"] == REDIRECT_URI and registered["scopes"] == SCOPES
    assert registered["website"] == "https://studio.example"
    # The instance saw the S256 challenge, and the token request proved it with the verifier.
    grant = next(iter(mastodon.grants.values()))
    assert grant.code_challenge_method == "S256" and grant.used
    assert mastodon.requests_for(TOKEN)[0].form["code_verifier"] == verifier
    assert mastodon.tokens[credentials["accessToken"]].scopes == set(SCOPES.split())

    # The token works without posting anything.
    session = ChannelSession(credentials=credentials, save=keep, read_media=reader(), rules=rules)
    assert await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True) == account
    assert mastodon.statuses == []


async def test_a_code_is_good_once_and_only_with_its_verifier(mastodon: MastodonServer) -> None:
    app = await register_app(mastodon.base_url, REDIRECT_URI, timeout_seconds=TIMEOUT, allow_private_networks=True)
    verifier, challenge = pkce_pair()

    async def code() -> str:
        url = authorization_url(mastodon.base_url, app["clientId"], REDIRECT_URI, "s", challenge)
        return query_of(await follow_authorization(url))["code"]

    async def exchange(code: str, verifier: str, secret: str = app["clientSecret"]) -> object:
        return await exchange_code(
            mastodon.base_url,
            app["clientId"],
            secret,
            REDIRECT_URI,
            code,
            verifier,
            timeout_seconds=TIMEOUT,
            allow_private_networks=True,
        )

    with pytest.raises(ChannelCredentialsRejected, match="invalid_grant"):
        await exchange(await code(), pkce_pair()[0])  # another verifier
    with pytest.raises(ChannelCredentialsRejected, match="invalid_client"):
        await exchange(await code(), verifier, secret="not-the-secret")
    used = await code()
    await exchange(used, verifier)
    with pytest.raises(ChannelCredentialsRejected, match="invalid_grant"):
        await exchange(used, verifier)
    assert len([t for t in mastodon.tokens.values() if not t.revoked]) == 1


async def test_a_denied_authorization_comes_back_as_an_error(mastodon: MastodonServer) -> None:
    app = await register_app(mastodon.base_url, REDIRECT_URI, timeout_seconds=TIMEOUT, allow_private_networks=True)
    mastodon.authorize_decision = "deny"
    url = authorization_url(mastodon.base_url, app["clientId"], REDIRECT_URI, "s-1", pkce_pair()[1])
    back = await follow_authorization(url)
    assert back.startswith(REDIRECT_URI) and query_of(back) == {"error": "access_denied", "state": "s-1"}
    assert len(mastodon.requests_for(AUTHORIZE)) == 1 and mastodon.grants == {}


async def test_registering_the_app_sorts_the_instances_refusals(mastodon: MastodonServer) -> None:
    async def register(instance: str = mastodon.base_url) -> Credentials:
        return await register_app(instance, REDIRECT_URI, timeout_seconds=TIMEOUT, allow_private_networks=True)

    mastodon.inject(APPS, Fault(status=422, body={"error": "Validation failed: Redirect URI must be an absolute URI"}))
    with pytest.raises(InstanceRefused, match="absolute URI") as refused:
        await register()
    assert isinstance(refused.value, ValueError) and refused.value.status_code == 422
    mastodon.inject(APPS, failing(503))
    with pytest.raises(ChannelUnavailable, match="503"):
        await register()
    mastodon.inject(APPS, rate_limited(60))
    with pytest.raises(ChannelUnavailable) as limited:
        await register()
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 60
    with pytest.raises(ChannelUnavailable, match="could not connect"):
        await register(f"http://127.0.0.1:{free_port()}")
    assert await register()  # and then it works


# ---- the instance's rules ---------------------------------------------------------------------------------------


async def test_the_instances_own_limits_are_read(mastodon: MastodonServer) -> None:
    mastodon.config.max_characters = 1000
    mastodon.config.characters_reserved_per_url = 30
    mastodon.config.max_media_attachments = 6
    mastodon.config.image_size_limit = 8 * 1024 * 1024
    rules = await instance_rules(mastodon.base_url, timeout_seconds=TIMEOUT, allow_private_networks=True)
    assert rules == PlatformRules(max_chars=1000, url_length=30, max_images=6, image_max_bytes=8 * 1024 * 1024)


async def test_an_instance_before_mastodon_4_is_read_through_api_v1(mastodon: MastodonServer) -> None:
    mastodon.config.api_version = 1
    mastodon.config.max_characters = 5000
    rules = await instance_rules(mastodon.base_url, timeout_seconds=TIMEOUT, allow_private_networks=True)
    assert rules.max_chars == 5000 and rules.url_length == 23
    assert [r.path for r in mastodon.requests] == ["/api/v2/instance", "/api/v1/instance"]


# ---- posting ---------------------------------------------------------------------------------------------------


async def test_a_status_is_posted_with_two_images_the_instance_processes_first(mastodon: MastodonServer) -> None:
    first, second = image("A robot arm sorting parcels"), image("The sorting hall from above", "image/jpeg")
    video = MediaRef(id=uuid.uuid4(), url="https://media.example/v.mp4", kind=MediaKind.VIDEO, mime_type="video/mp4")
    files = {first.id: tiny_png(8, 6), second.id: b"\xff\xd8\xff" + b"jpeg" * 50}
    token = mastodon.issue_token()
    text = "New on the blog: how we sort 10,000 parcels an hour https://acme.example/blog/sorting #robotics"
    post = delivery(text, media=[first, video, second])

    receipt = await publisher_for(session_for(mastodon, token, files=files)).publish(post, "dlv-1")

    [status] = mastodon.statuses
    assert receipt.external_id == status.id and receipt.status_code == 200
    assert receipt.url == f"{mastodon.base_url}/@alice/{status.id}"
    assert status.text == text and status.visibility == "public" and status.idempotency_key == "dlv-1"
    attached = [mastodon.media[m] for m in status.media_ids]
    assert [m.description for m in attached] == ["A robot arm sorting parcels", "The sorting hall from above"]
    assert [m.data for m in attached] == [files[first.id], files[second.id]]
    assert [m.mime_type for m in attached] == ["image/png", "image/jpeg"]  # the video is not an image: not sent
    # Both answered 202 with url null, and were asked about until processed (206, 206, then 200).
    assert len(mastodon.requests_for(MEDIA_STATUS)) == 6
    [request] = mastodon.requests_for(STATUSES)
    assert request.headers["idempotency-key"] == "dlv-1"
    assert request.headers["authorization"] == f"Bearer {token}" and token not in request.query
    assert request.json == {"status": text, "visibility": "public", "media_ids": status.media_ids}


async def test_only_as_many_images_as_the_channel_takes_are_sent(mastodon: MastodonServer) -> None:
    mastodon.processing_polls = 0  # small files: processed at once (200 with a url)
    rules = PlatformRules(max_chars=500, url_length=23, max_images=2)
    images = [image(f"picture {n}") for n in range(3)]
    await publisher_for(session_for(mastodon, rules=rules)).publish(delivery(media=images), "dlv-2")
    [status] = mastodon.statuses
    assert [mastodon.media[m].description for m in status.media_ids] == ["picture 0", "picture 1"]
    assert mastodon.requests_for(MEDIA_STATUS) == []


async def test_media_still_processing_after_the_wait_is_not_sent(mastodon: MastodonServer) -> None:
    mastodon.processing_polls = 10**6
    publisher = publisher_for(session_for(mastodon), media_wait_seconds=1.0)
    with pytest.raises(PublishNotSent, match="still processing the media"):
        await publisher.publish(delivery(media=[image("slow")]), "dlv-3")
    assert mastodon.statuses == [] and mastodon.requests_for(STATUSES) == []


async def test_a_retry_after_an_unknown_outcome_gets_the_same_status(mastodon: MastodonServer) -> None:
    mastodon.processing_polls = 1
    publisher = publisher_for(session_for(mastodon))
    post = delivery(media=[image("one picture")])
    mastodon.inject(STATUSES, dropped_after())  # the status is made, then the connection breaks

    with pytest.raises(PublishOutcomeUnknown, match="broke"):
        await publisher.publish(post, "dlv-4")
    assert len(mastodon.statuses) == 1
    receipt = await publisher.publish(post, "dlv-4")  # as the activity sends it again: the same delivery id

    [status] = mastodon.statuses
    assert receipt.external_id == status.id and mastodon.duplicates == 1
    assert [r.headers["idempotency-key"] for r in mastodon.requests_for(STATUSES)] == ["dlv-4", "dlv-4"]


async def test_a_slow_answer_after_posting_is_an_unknown_outcome(mastodon: MastodonServer) -> None:
    mastodon.inject(STATUSES, slow())
    publisher = publisher_for(session_for(mastodon), timeout_seconds=3.0)
    with pytest.raises(PublishOutcomeUnknown, match="did not answer within 3 s"):
        await publisher.publish(delivery(), "dlv-5")
    mastodon.release()
    receipt = await publisher_for(publisher.session).publish(delivery(), "dlv-5")
    [status] = mastodon.statuses
    assert receipt.external_id == status.id


@pytest.mark.parametrize(
    ("fault", "made"),
    [(failing_after(502), 1), (failing(500), 0), (failing(503), 0), (dropped_before(), 0)],
    ids=["502-after-posting", "500", "503", "dropped-before"],
)
async def test_a_server_error_on_the_status_is_an_unknown_outcome(
    mastodon: MastodonServer, fault: Fault, made: int
) -> None:
    mastodon.inject(STATUSES, fault)
    with pytest.raises(PublishOutcomeUnknown):
        await publisher_for(session_for(mastodon)).publish(delivery(), "dlv-6")
    assert len(mastodon.statuses) == made


@pytest.mark.parametrize(
    "fault",
    [failing(503), failing_after(502), dropped_after(), dropped_before()],
    ids=["503", "502-after", "dropped-after", "dropped-before"],
)
async def test_a_failure_while_uploading_media_is_not_sent(mastodon: MastodonServer, fault: Fault) -> None:
    mastodon.inject(MEDIA, fault)
    with pytest.raises(PublishNotSent) as failed:
        await publisher_for(session_for(mastodon)).publish(delivery(media=[image("x")]), "dlv-7")
    assert not isinstance(failed.value, ChannelCredentialsRejected)
    assert mastodon.statuses == [] and mastodon.requests_for(STATUSES) == []


async def test_a_failure_while_asking_about_media_is_not_sent(mastodon: MastodonServer) -> None:
    mastodon.inject(MEDIA_STATUS, failing(503))
    with pytest.raises(PublishNotSent, match="processed"):
        await publisher_for(session_for(mastodon)).publish(delivery(media=[image("x")]), "dlv-8")
    assert mastodon.statuses == []


async def test_a_revoked_token_needs_the_channel_reconnected(mastodon: MastodonServer) -> None:
    token = mastodon.issue_token()
    session = session_for(mastodon, token)
    mastodon.revoke_token(token)
    with pytest.raises(ChannelCredentialsRejected, match="The access token is invalid") as refused:
        await publisher_for(session).publish(delivery(media=[image("x")]), "dlv-9")
    assert refused.value.status_code == 401 and mastodon.statuses == [] and mastodon.media == {}
    with pytest.raises(ChannelCredentialsRejected):
        await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True)


async def test_a_token_without_the_scope_to_post_needs_the_channel_reconnected(mastodon: MastodonServer) -> None:
    session = session_for(mastodon, mastodon.issue_token(scopes="read:accounts"))
    with pytest.raises(ChannelCredentialsRejected, match="outside the authorized scopes") as refused:
        await publisher_for(session).publish(delivery(), "dlv-10")
    assert refused.value.status_code == 403 and mastodon.statuses == []


async def test_a_validation_error_is_rejected_with_the_instances_words(mastodon: MastodonServer) -> None:
    mastodon.config.max_characters = 100  # lowered since the channel was connected (its rules still say 500)
    with pytest.raises(PublishRejected, match="Text character limit of 100 exceeded") as rejected:
        await publisher_for(session_for(mastodon)).publish(delivery("x" * 200), "dlv-11")
    assert rejected.value.status_code == 422 and mastodon.statuses == []


@pytest.mark.parametrize("route", [STATUSES, MEDIA])
async def test_a_rate_limit_is_not_sent_and_says_when_to_retry(mastodon: MastodonServer, route: str) -> None:
    mastodon.processing_polls = 0
    mastodon.inject(route, rate_limited(120))
    with pytest.raises(PublishNotSent) as limited:
        await publisher_for(session_for(mastodon)).publish(delivery(media=[image("x")]), "dlv-12")
    assert limited.value.status_code == 429 and not isinstance(limited.value, ChannelCredentialsRejected)
    assert limited.value.retry_after is not None and 60 < limited.value.retry_after <= 120
    assert mastodon.statuses == []


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (Fault(status=404, body={"error": "Record not found"}), "Record not found"),
        (Fault(status=302, headers={"Location": "https://elsewhere.example/"}), "redirect"),
    ],
    ids=["404", "redirect"],
)
async def test_other_refusals_are_rejected(mastodon: MastodonServer, fault: Fault, says: str) -> None:
    mastodon.inject(STATUSES, fault)
    with pytest.raises(PublishRejected, match=says):
        await publisher_for(session_for(mastodon)).publish(delivery(), "dlv-13")


async def test_a_text_too_long_for_the_channel_is_refused_before_sending(mastodon: MastodonServer) -> None:
    link = "https://acme.example/blog/" + "a-very-long-slug-" * 10
    fits = "x" * (500 - 23 - 1) + " " + link  # 500 as Mastodon counts, although far longer as written
    too_long = "x" * (500 - 23) + " " + link
    assert len(fits) > 600 and counted_length(fits, DEFAULT_RULES) == 500

    publisher = publisher_for(session_for(mastodon))
    with pytest.raises(PublishRejected, match="501 characters") as rejected:
        await publisher.publish(delivery(too_long), "dlv-14")
    assert "allows 500" in rejected.value.reason and mastodon.requests == []
    await publisher.publish(delivery(fits), "dlv-15")  # the instance counts it the same way
    assert [s.text for s in mastodon.statuses] == [fits]


async def test_an_image_larger_than_the_instance_takes_is_refused_before_sending(mastodon: MastodonServer) -> None:
    rules = PlatformRules(max_chars=500, url_length=23, image_max_bytes=1000)
    big = image("big")
    session = session_for(mastodon, rules=rules, files={big.id: b"\x89PNG" + b"0" * 2000})
    with pytest.raises(PublishRejected, match="at most 1000 bytes"):
        await publisher_for(session).publish(delivery(media=[big]), "dlv-16")
    assert mastodon.requests == []


async def test_an_unreachable_instance_is_not_sent(mastodon: MastodonServer) -> None:
    session = session_for(mastodon, instance=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(PublishNotSent, match="could not connect"):
        await publisher_for(session).publish(delivery(), "dlv-17")
    with pytest.raises(ChannelUnavailable, match="could not connect"):
        await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True)


# ---- where requests may go ------------------------------------------------------------------------------------------


async def test_a_non_public_instance_is_refused_unless_private_networks_are_allowed(mastodon: MastodonServer) -> None:
    local_https = f"https://127.0.0.1:{mastodon.port}"
    with pytest.raises(ValueError, match="loopback"):
        await register_app(local_https, REDIRECT_URI, timeout_seconds=TIMEOUT)
    with pytest.raises(ValueError, match="https"):
        await register_app(mastodon.base_url, REDIRECT_URI, timeout_seconds=TIMEOUT)
    with pytest.raises(ValueError, match="loopback"):
        await instance_rules("https://localhost", timeout_seconds=TIMEOUT)

    for instance in (local_https, mastodon.base_url):
        session = session_for(mastodon, instance=instance)
        with pytest.raises(PublishRejected):
            await MastodonPublisher(session, timeout_seconds=TIMEOUT).publish(delivery(), "dlv-18")
        with pytest.raises(ChannelUnavailable):
            await check(session, timeout_seconds=TIMEOUT)
    assert mastodon.requests == []  # nothing was sent anywhere


# ---- checking and disconnecting ---------------------------------------------------------------------------------


async def test_check_sorts_a_rate_limit_and_a_server_error_as_unavailable(mastodon: MastodonServer) -> None:
    session = session_for(mastodon)
    mastodon.inject(VERIFY_CREDENTIALS, rate_limited(30), failing(502))
    with pytest.raises(ChannelUnavailable) as limited:
        await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True)
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 30
    with pytest.raises(ChannelUnavailable, match="502"):
        await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True)
    account = await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True)
    assert account.handle == f"@alice@127.0.0.1:{mastodon.port}"


async def test_disconnecting_revokes_the_token_at_the_instance(mastodon: MastodonServer) -> None:
    _, credentials, rules, _ = await connect(mastodon)
    session = ChannelSession(credentials=credentials, save=keep, read_media=reader(), rules=rules)
    assert await revoke(session, timeout_seconds=TIMEOUT, allow_private_networks=True) is True
    assert mastodon.tokens[credentials["accessToken"]].revoked
    with pytest.raises(ChannelCredentialsRejected):
        await check(session, timeout_seconds=TIMEOUT, allow_private_networks=True)
    unreachable = ChannelSession(
        credentials={**credentials, "instance": f"http://127.0.0.1:{free_port()}"}, save=keep, read_media=reader()
    )
    assert await revoke(unreachable, timeout_seconds=TIMEOUT, allow_private_networks=True) is False


# ---- secrets ------------------------------------------------------------------------------------------------------


async def test_no_token_or_secret_reaches_a_log_line_or_an_error(
    mastodon: MastodonServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    mastodon.processing_polls = 0
    account, credentials, rules, verifier = await connect(mastodon)
    session = ChannelSession(credentials=credentials, save=keep, read_media=reader(), rules=rules)
    publisher = publisher_for(session)
    errors: list[BaseException] = []
    faults = [
        (STATUSES, failing(500)),
        (STATUSES, dropped_after()),
        (STATUSES, rate_limited(10)),
        (MEDIA, failing(503)),
        (STATUSES, Fault(status=422, body={"error": "Validation failed: Text can't be blank"})),
    ]
    for route, fault in faults:
        mastodon.inject(route, fault)
        try:
            await publisher.publish(delivery(media=[image("alt")]), f"dlv-{uuid.uuid4()}")
        except PublishError as exc:
            errors.append(exc)
    await publisher.publish(delivery(), "dlv-ok")
    mastodon.revoke_token(credentials["accessToken"])
    for attempt in (
        publisher.publish(delivery(), "dlv-x"),
        check(session, timeout_seconds=TIMEOUT, allow_private_networks=True),
    ):
        try:
            await attempt
        except (PublishError, ChannelUnavailable) as exc:
            errors.append(exc)
    assert len(errors) == len(faults) + 2

    assert "HTTP Request: POST" in caplog.text  # the client's own log lines were captured, and checked below
    secrets_used = [credentials["accessToken"], credentials["clientSecret"], verifier]
    shown = [caplog.text, repr(publisher), *(f"{e!s} {e!r} {e.__cause__!s}" for e in errors)]
    for secret in secrets_used:
        assert all(secret not in text for text in shown)
    # Nor in any URL the instance saw: tokens travel in headers and bodies only.
    assert all(secret not in r.query and secret not in r.path for r in mastodon.requests for secret in secrets_used)
    assert account.handle.startswith("@alice@")
