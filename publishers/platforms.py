"""The platform modules behind one face: connect an account, check it, disconnect it, publish through it.

The channel activities and the publish activity call these by `Platform`; each platform module keeps its own
protocol (publishers/bluesky.py, publishers/mastodon.py). Every address a person typed (a PDS, an instance) is
checked against the deployment's address policy (models.destinations) before anything is sent to it, as the
webhook is: a channel cannot be used to reach the server's own network unless private networks are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass

from models.channels import ChannelAccount, ChannelInputError, PlatformRules
from models.destinations import DestinationError, NonPublicAddress, UnresolvedHost, check_url
from models.enums import Platform
from models.generation import PLATFORM_LIMITS
from publishers import bluesky, mastodon
from publishers.base import Publisher
from publishers.channel import ChannelSession, ChannelUnavailable, Credentials

MASTODON_DEFAULT_RULES = PlatformRules(max_chars=500, unit="characters", url_length=23, max_images=4)


@dataclass(frozen=True)
class PlatformOptions:
    timeout_seconds: float
    allow_private_networks: bool = False


def default_rules(platform: Platform) -> PlatformRules:
    """The platform's own rules, before a channel tells its own (a Mastodon instance may allow more)."""
    if platform == Platform.BLUESKY:
        return bluesky.RULES
    if platform == Platform.MASTODON:
        return MASTODON_DEFAULT_RULES
    return PlatformRules(max_chars=PLATFORM_LIMITS[platform].max_chars)


async def check_address(service: str, options: PlatformOptions, what: str, *, connecting: bool = False) -> None:
    """ChannelInputError when `service` is not an address the deployment may send to (or, `connecting`, a name that
    does not resolve: most likely a typo); ChannelUnavailable when a known channel's name does not resolve now."""
    try:
        await check_url(service, allow_private_networks=options.allow_private_networks)
    except NonPublicAddress as exc:
        raise ChannelInputError(
            f"{what} {service} is not on the public internet ({exc}); CHANNELS_ALLOW_PRIVATE_NETWORKS allows it"
        ) from None
    except UnresolvedHost as exc:
        if connecting:
            raise ChannelInputError(f"{what} {service} cannot be found: {exc}") from None
        raise ChannelUnavailable(f"{what} {service} cannot be reached: {exc}") from None
    except DestinationError as exc:
        raise ChannelInputError(f"{what} {service} cannot be used: {exc}") from None


async def connect_with_password(
    platform: Platform, service: str, handle: str, password: str, options: PlatformOptions
) -> tuple[ChannelAccount, Credentials, PlatformRules]:
    """Logs in with an app password (Bluesky): the account, the credentials to keep and the rules."""
    if platform != Platform.BLUESKY:
        raise ChannelInputError(f"{platform.label} does not connect with a password")
    await check_address(service, options, "the PDS", connecting=True)
    account, credentials = await bluesky.connect(service, handle, password, timeout_seconds=options.timeout_seconds)
    return account, credentials, bluesky.RULES


async def register_oauth_client(
    platform: Platform, service: str, redirect_uri: str, options: PlatformOptions
) -> Credentials:
    """This deployment's app on the OAuth server: {"clientId", "clientSecret"}."""
    if platform != Platform.MASTODON:
        raise ChannelInputError(f"{platform.label} does not connect through OAuth here")
    await check_address(service, options, "the instance", connecting=True)
    return await mastodon.register_app(
        service,
        redirect_uri,
        timeout_seconds=options.timeout_seconds,
        allow_private_networks=options.allow_private_networks,
    )


async def finish_oauth(
    platform: Platform,
    service: str,
    client: Credentials,
    redirect_uri: str,
    code: str,
    verifier: str,
    options: PlatformOptions,
) -> tuple[ChannelAccount, Credentials, PlatformRules]:
    """The authorization code exchanged for a token: the account, the credentials to keep and the rules."""
    if platform != Platform.MASTODON:
        raise ChannelInputError(f"{platform.label} does not connect through OAuth here")
    await check_address(service, options, "the instance")
    return await mastodon.exchange_code(
        service,
        client["clientId"],
        client["clientSecret"],
        redirect_uri,
        code,
        verifier,
        timeout_seconds=options.timeout_seconds,
        allow_private_networks=options.allow_private_networks,
    )


async def check(platform: Platform, service: str, session: ChannelSession, options: PlatformOptions) -> ChannelAccount:
    """The account, verified with the platform without posting anything."""
    await check_address(service, options, "the server")
    if platform == Platform.BLUESKY:
        return await bluesky.check(session, timeout_seconds=options.timeout_seconds)
    if platform == Platform.MASTODON:
        return await mastodon.check(
            session, timeout_seconds=options.timeout_seconds, allow_private_networks=options.allow_private_networks
        )
    raise ChannelInputError(f"{platform.label} channels are not supported yet")


async def disconnect(platform: Platform, service: str, session: ChannelSession, options: PlatformOptions) -> bool:
    """Gives back what the platform allows (Mastodon: the token is revoked); False when it could not. Bluesky app
    passwords are revoked by the account owner in Bluesky's settings: the stored session is simply forgotten."""
    if platform != Platform.MASTODON:
        return False
    try:
        await check_address(service, options, "the instance")
    except (ChannelInputError, ChannelUnavailable):
        return False
    return await mastodon.revoke(
        session, timeout_seconds=options.timeout_seconds, allow_private_networks=options.allow_private_networks
    )


async def publisher_for(
    platform: Platform, service: str, session: ChannelSession, options: PlatformOptions
) -> Publisher:
    """The channel's publisher, after its address passed the policy (checked at every send, as the webhook is)."""
    await check_address(service, options, "the server")
    if platform == Platform.BLUESKY:
        return bluesky.BlueskyPublisher(session, timeout_seconds=options.timeout_seconds)
    if platform == Platform.MASTODON:
        return mastodon.MastodonPublisher(
            session, timeout_seconds=options.timeout_seconds, allow_private_networks=options.allow_private_networks
        )
    raise ChannelInputError(f"{platform.label} channels are not supported yet")
