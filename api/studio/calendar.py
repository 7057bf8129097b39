"""The studio's calendar of social posts, its iCalendar feed, and a blog post's social post previews (read-only).

- /studio/calendar: the tenant's scheduled social posts of a month, per day in each company's time zone.
- /studio/calendar.ics?token=...: the same posts as an iCalendar feed for calendar apps, which send no cookie.
  The token is `<key id hex>.<HMAC-SHA256 hex, keyed by the key's stored hash, of "studio-ics.<key id hex>">`: it
  never expires, and dies with the key (the feed looks the key up by id among the live ones).
- /studio/blogposts/{id}/social: each social post as its audience would see it, with its length counted the way
  the platform counts (models/text_limits.py), and a Mastodon post the way the company's Mastodon channel's
  instance counts (its own limit; every link 23 characters).
- /studio/media/{id}: a media file for the studio's pages (the API's media route wants a bearer key, which a
  browser's <img> cannot send).
"""

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response
from pydantic import ValidationError
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.deps import SessionDep, SettingsDep
from api.services.channels import company_channels
from api.studio import ics
from api.studio.pages import StudioNotFound, page
from api.studio.render import aware, zone_of
from api.studio.sessions import StudioUserDep
from models.channels import PlatformRules
from models.enums import MediaKind, Platform, PublishState
from models.media_store import EXTENSIONS, media_file
from models.tables import ApiKey, BlogPost, Channel, Company, MediaAsset, SocialPost, Tenant
from models.text_limits import HASHTAG, LIMITS, X_URL_LENGTH, counted_length, mastodon_length, unit_of, url_spans

router = APIRouter(prefix="/studio", include_in_schema=False)

ICS_PURPOSE = "studio-ics"
EXCERPT_CHARS = 80
MASTODON_URL_LENGTH = 23  # every link on Mastodon counts as 23 characters, however long it is
# The feed's window: from this many months back to this many ahead of now.
FEED_MONTHS_BACK = 3
FEED_MONTHS_AHEAD = 12
EVENT_UID_DOMAIN = "content-pipeline"
NOT_FOUND_TEXT = "Not found: the feed address is not valid, or its API key has been revoked.\n"

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
_SPACES = re.compile(r"\s+")

STATE_LABELS = {
    PublishState.DRAFT: "Draft",
    PublishState.SCHEDULED: "Scheduled",
    PublishState.PUBLISHING: "Publishing",
    PublishState.PUBLISHED: "Published",
    PublishState.UNCONFIRMED: "Unconfirmed",
    PublishState.FAILED: "Failed",
}


# ---- months and zones --------------------------------------------------------------------------------------


def parse_month(value: str) -> tuple[int, int] | None:
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1970 <= int(match.group(1)) <= 9998:
        return None
    return int(match.group(1)), int(match.group(2))


def shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def shift_moment(moment: datetime, months: int) -> datetime:
    """The same day and time `months` later (earlier when negative), the day clamped to the month's last."""
    year, month = shift_month(moment.year, moment.month, months)
    next_year, next_month = shift_month(year, month, 1)
    last_day = (date(next_year, next_month, 1) - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def month_label(year: int, month: int) -> str:
    return f"{date(year, month, 1):%B} {year}"


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first `limit` characters of the text on one line, cut at a word and ending in an ellipsis."""
    flat = _SPACES.sub(" ", text).strip()
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.") + "\u2026"


# ---- the calendar page -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEntry:
    post_id: uuid.UUID
    local: datetime
    platform_label: str
    state: str
    state_label: str
    excerpt: str
    blog_post_id: uuid.UUID
    blog_title: str
    company_name: str

    @property
    def time_label(self) -> str:
        return self.local.strftime("%H:%M %Z")


@dataclass
class CalendarDay:
    day: date
    entries: list[CalendarEntry] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.day:%A} {self.day.day} {self.day:%B %Y}"


def ics_signature(key_hash: str, key_id: uuid.UUID) -> str:
    return hmac.new(key_hash.encode(), f"{ICS_PURPOSE}.{key_id.hex}".encode(), hashlib.sha256).hexdigest()


def ics_token(key_id: uuid.UUID, key_hash: str) -> str:
    """The feed's token for a key: `<key id hex>.<signature>`."""
    return f"{key_id.hex}.{ics_signature(key_hash, key_id)}"


async def owned_company(session: AsyncSession, tenant_id: uuid.UUID, value: str) -> Company | None:
    """The tenant's company named by a filter's value; None for no filter; StudioNotFound for any other."""
    if not value.strip():
        return None
    try:
        company = await session.get(Company, uuid.UUID(value.strip()))
    except ValueError:
        raise StudioNotFound() from None
    if company is None or company.tenant_id != tenant_id:
        raise StudioNotFound()
    return company


async def month_days(
    session: AsyncSession, tenant_id: uuid.UUID, year: int, month: int, company: Company | None
) -> list[CalendarDay]:
    """The tenant's scheduled posts whose time, in their company's zone, falls in the month, per local day."""
    first = date(year, month, 1)
    after = date(*shift_month(year, month, 1), 1)
    # A day either side covers every zone (UTC-12 to UTC+14); each post is then placed by its own local date.
    start = datetime(first.year, first.month, 1, tzinfo=UTC) - timedelta(days=1)
    end = datetime(after.year, after.month, 1, tzinfo=UTC) + timedelta(days=1)
    statement = (
        select(SocialPost, BlogPost, Company)
        .join(BlogPost, col(BlogPost.id) == col(SocialPost.blog_post_id))
        .join(Company, col(Company.id) == col(SocialPost.company_id))
        .where(
            col(SocialPost.tenant_id) == tenant_id,
            col(BlogPost.tenant_id) == tenant_id,
            col(Company.tenant_id) == tenant_id,
            col(SocialPost.publish_at).is_not(None),
            col(SocialPost.publish_at) >= start,
            col(SocialPost.publish_at) < end,
        )
        .order_by(col(SocialPost.publish_at), col(SocialPost.platform))
    )
    if company is not None:
        statement = statement.where(col(SocialPost.company_id) == company.id)
    days: dict[date, CalendarDay] = {}
    for post, blog_post, owner in (await session.exec(statement)).all():
        assert post.publish_at is not None
        local = aware(post.publish_at).astimezone(zone_of(owner))
        if not first <= local.date() < after:
            continue
        state = PublishState(post.publish_state)
        entry = CalendarEntry(
            post_id=post.id,
            local=local,
            platform_label=Platform(post.platform).label,
            state=state.value,
            state_label=STATE_LABELS.get(state, state.value),
            excerpt=excerpt(post.text),
            blog_post_id=blog_post.id,
            blog_title=blog_post.title,
            company_name=owner.name,
        )
        days.setdefault(local.date(), CalendarDay(local.date())).entries.append(entry)
    for day in days.values():
        day.entries.sort(key=lambda e: (e.local.astimezone(UTC), e.platform_label))
    return [days[key] for key in sorted(days)]


def calendar_url(year: int, month: int, company: Company | None) -> str:
    query = {"month": f"{year:04d}-{month:02d}"} | ({"company": str(company.id)} if company is not None else {})
    return f"/studio/calendar?{urlencode(query)}"


@router.get("/calendar", response_class=HTMLResponse)
async def calendar_page(
    request: Request,
    user: StudioUserDep,
    session: SessionDep,
    settings: SettingsDep,
    month: str = "",
    company: str = "",
) -> Response:
    tenant_id = user.principal.tenant_id
    selected = await owned_company(session, tenant_id, company)
    now = datetime.now(UTC)
    error = ""
    parsed = parse_month(month) if month else (now.year, now.month)
    if parsed is None:
        error = f"“{month}” is not a month: write it as YYYY-MM, e.g. {now:%Y-%m}. Showing this month."
        parsed = (now.year, now.month)
    year, number = parsed
    companies = (
        await session.exec(select(Company).where(col(Company.tenant_id) == tenant_id).order_by(col(Company.name)))
    ).all()
    key = await session.get(ApiKey, user.principal.key_id)
    feed_url = ""
    if key is not None:
        token = ics_token(key.id, key.key_hash)
        feed_url = f"{settings.public_base_url.rstrip('/')}/studio/calendar.ics?token={token}"
    previous, following = shift_month(year, number, -1), shift_month(year, number, 1)
    response = page(
        request,
        "calendar.html",
        user,
        status_code=422 if error else 200,
        error=error,
        month=f"{year:04d}-{number:02d}",
        month_label=month_label(year, number),
        previous_label=month_label(*previous),
        previous_url=calendar_url(*previous, selected),
        next_label=month_label(*following),
        next_url=calendar_url(*following, selected),
        companies=companies,
        selected=selected,
        days=await month_days(session, tenant_id, year, number, selected),
        feed_url=feed_url,
    )
    # The page holds the feed's token: never let it leave in a Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


# ---- the iCalendar feed ------------------------------------------------------------------------------------


async def key_of_token(session: AsyncSession, token: str) -> ApiKey | None:
    """The live key a feed token was made with; None for a malformed, forged or revoked one."""
    key_hex, _, signature = token.strip().partition(".")
    try:
        key_id = uuid.UUID(hex=key_hex)
    except ValueError:
        return None
    if len(key_hex) != 32 or not signature:
        return None
    key = (await session.exec(select(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None)))).first()
    if key is None or not hmac.compare_digest(signature, ics_signature(key.key_hash, key.id)):
        return None
    return key


def event_of(post: SocialPost, blog_post: BlogPost, company: Company, base_url: str) -> ics.Event:
    assert post.publish_at is not None
    state = PublishState(post.publish_state)
    platform = Platform(post.platform)
    details = [post.text.strip(), "", f"State: {STATE_LABELS.get(state, state.value)}", f"Company: {company.name}"]
    if post.publish_error and state in (PublishState.FAILED, PublishState.UNCONFIRMED):
        details.append(f"Why: {post.publish_error}")
    return ics.Event(
        uid=f"{post.id}@{EVENT_UID_DOMAIN}",
        start=aware(post.publish_at),
        summary=f"{platform.label}: {blog_post.title}",
        description="\n".join(details),
        status="CONFIRMED" if state == PublishState.PUBLISHED else "TENTATIVE",
        url=f"{base_url}/studio/blogposts/{blog_post.id}/social",
    )


@router.get("/calendar.ics")
async def calendar_feed(session: SessionDep, settings: SettingsDep, token: str = "") -> Response:
    key = await key_of_token(session, token) if token else None
    if key is None:
        return PlainTextResponse(NOT_FOUND_TEXT, status_code=404, headers={"Cache-Control": "no-store"})
    tenant = await session.get(Tenant, key.tenant_id)
    now = datetime.now(UTC)
    statement = (
        select(SocialPost, BlogPost, Company)
        .join(BlogPost, col(BlogPost.id) == col(SocialPost.blog_post_id))
        .join(Company, col(Company.id) == col(SocialPost.company_id))
        .where(
            col(SocialPost.tenant_id) == key.tenant_id,
            col(BlogPost.tenant_id) == key.tenant_id,
            col(Company.tenant_id) == key.tenant_id,
            col(SocialPost.publish_at).is_not(None),
            col(SocialPost.publish_at) >= shift_moment(now, -FEED_MONTHS_BACK),
            col(SocialPost.publish_at) <= shift_moment(now, FEED_MONTHS_AHEAD),
        )
        .order_by(col(SocialPost.publish_at), col(SocialPost.id))
    )
    base_url = settings.public_base_url.rstrip("/")
    events = [event_of(post, blog, company, base_url) for post, blog, company in (await session.exec(statement)).all()]
    name = f"{tenant.name if tenant else 'content-pipeline'}: social posts"
    return Response(
        ics.calendar(name, events, now),
        media_type="text/calendar; charset=utf-8",
        headers={
            "Content-Disposition": 'inline; filename="social-posts.ics"',
            "Cache-Control": "private, max-age=300",
            "Referrer-Policy": "no-referrer",
        },
    )


# ---- social post previews ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviewCard:
    post: SocialPost
    platform: Platform
    platform_label: str
    state_label: str
    local: datetime | None
    segments: list[tuple[str, str]]  # (kind, text): kind is "text", "url" or "tag"
    link: str
    link_host: str
    image: MediaAsset | None
    image_alt: str
    video: MediaAsset | None
    count: int
    limit: int
    unit: str
    count_note: str
    hashtags_not_in_text: list[str]

    @property
    def over(self) -> int:
        return max(0, self.count - self.limit)


def segments_of(text: str) -> list[tuple[str, str]]:
    """The text cut into plain runs, http(s) URLs and hashtags, for the template to mark up (and escape)."""
    marks = [(start, end, "url") for start, end in url_spans(text)]
    for match in HASHTAG.finditer(text):
        if not any(start <= match.start() < end for start, end, _ in marks):
            marks.append((match.start(), match.end(), "tag"))
    marks.sort()
    segments: list[tuple[str, str]] = []
    position = 0
    for start, end, kind in marks:
        if start < position:
            continue
        if start > position:
            segments.append(("text", text[position:start]))
        segments.append((kind, text[start:end]))
        position = end
    if position < len(text):
        segments.append(("text", text[position:]))
    return segments


def count_note(platform: Platform) -> str:
    if platform == Platform.X:
        return f"as X counts: every link counts as {X_URL_LENGTH}"
    if platform == Platform.BLUESKY:
        return "as Bluesky counts: user-perceived characters (an emoji sequence is one)"
    return f"as {platform.label} counts"


@dataclass(frozen=True)
class Counting:
    """How a post is counted for its card: against which limit, in what unit, and the sentence that says so.
    `rules`: a Mastodon instance's (its channel's, else Mastodon's defaults), whose links count a fixed length."""

    limit: int
    unit: str
    note: str
    rules: PlatformRules | None = None

    def length(self, platform: Platform, text: str) -> int:
        return mastodon_length(text, self.rules) if self.rules is not None else counted_length(platform, text)


MASTODON_DEFAULT_RULES = PlatformRules(max_chars=LIMITS[Platform.MASTODON], url_length=MASTODON_URL_LENGTH)


def counting_for(platform: Platform, channel: Channel | None) -> Counting:
    """How the company's channel for the platform counts (Mastodon: its instance's limit), else the platform."""
    if platform != Platform.MASTODON:
        return Counting(LIMITS[platform], unit_of(platform), count_note(platform))
    rules = None
    if channel is not None and channel.rules:
        try:
            rules = PlatformRules.model_validate(channel.rules)
        except ValidationError:
            rules = None  # rules this version cannot read: Mastodon's defaults, rather than no page
    if channel is None or rules is None:
        rules = MASTODON_DEFAULT_RULES
        note = (
            f"as Mastodon counts: every link counts as {MASTODON_URL_LENGTH}; {rules.max_chars} is Mastodon's "
            "default, no Mastodon channel with its instance's limit is connected"
        )
    else:
        host = urlsplit(channel.service).hostname or channel.service
        links = f"every link counts as {rules.url_length}" if rules.url_length is not None else "links as written"
        note = f"as {host} counts: its own limit, {links}"
    return Counting(rules.max_chars, rules.unit, note, rules)


def preview_card(
    post: SocialPost, zone: ZoneInfo, image: MediaAsset | None, video: MediaAsset | None, counting: Counting
) -> PreviewCard:
    platform = Platform(post.platform)
    state = PublishState(post.publish_state)
    text = post.text  # exactly what the publisher sends (publishers.base.Delivery.text): hashtags included
    spans = url_spans(text)
    link = text[spans[0][0] : spans[0][1]] if spans else ""
    in_text = {match.group(0)[1:].casefold() for match in HASHTAG.finditer(text)}
    alt = (image.alt_text or image.prompt or post.image_prompt).strip() if image is not None else ""
    return PreviewCard(
        post=post,
        platform=platform,
        platform_label=platform.label,
        state_label=STATE_LABELS.get(state, state.value),
        local=aware(post.publish_at).astimezone(zone) if post.publish_at else None,
        segments=segments_of(text),
        link=link,
        link_host=(urlsplit(link).hostname or "") if link else "",
        image=image,
        image_alt=alt or "An image for this post (no description was written)",
        video=video,
        count=counting.length(platform, text),
        limit=counting.limit,
        unit=counting.unit,
        count_note=counting.note,
        hashtags_not_in_text=[tag for tag in post.hashtags if tag.casefold() not in in_text],
    )


PLATFORM_ORDER = {platform: index for index, platform in enumerate(Platform)}


@router.get("/blogposts/{blog_post_id}/social", response_class=HTMLResponse)
async def social_previews(
    request: Request, blog_post_id: uuid.UUID, user: StudioUserDep, session: SessionDep
) -> Response:
    tenant_id = user.principal.tenant_id
    blog_post = await session.get(BlogPost, blog_post_id)
    if blog_post is None or blog_post.tenant_id != tenant_id:
        raise StudioNotFound()
    company = await session.get(Company, blog_post.company_id)
    posts = (
        await session.exec(
            select(SocialPost).where(
                col(SocialPost.blog_post_id) == blog_post.id, col(SocialPost.tenant_id) == tenant_id
            )
        )
    ).all()
    belongs = col(MediaAsset.blog_post_id) == blog_post.id
    if posts:
        belongs = or_(belongs, col(MediaAsset.social_post_id).in_([post.id for post in posts]))
    assets = (
        await session.exec(
            select(MediaAsset)
            .where(col(MediaAsset.tenant_id) == tenant_id, belongs)
            .order_by(col(MediaAsset.created_at))
        )
    ).all()
    images: dict[uuid.UUID, MediaAsset] = {}
    video: MediaAsset | None = None
    for asset in assets:
        kind = MediaKind(asset.kind)
        if kind == MediaKind.IMAGE and asset.social_post_id is not None:
            images.setdefault(asset.social_post_id, asset)
        elif kind == MediaKind.VIDEO and asset.social_post_id is None and video is None:
            video = asset  # as the publisher does: the blog post's video goes with each of its social posts
    zone = zone_of(company)
    # Each post is counted as its company's channel for the platform counts (a Mastodon instance has its own limit).
    channels = {
        Platform(channel.platform): channel for channel in await company_channels(session, blog_post.company_id)
    }
    countings = {platform: counting_for(platform, channels.get(platform)) for platform in Platform}
    ordered = sorted(posts, key=lambda p: (PLATFORM_ORDER.get(Platform(p.platform), 99), aware(p.created_at)))
    cards = [
        preview_card(post, zone, images.get(post.id), video, countings[Platform(post.platform)]) for post in ordered
    ]
    return page(
        request,
        "social_previews.html",
        user,
        blog_post=blog_post,
        company_name=company.name if company else "",
        company_id=blog_post.company_id,
        cards=cards,
    )


# ---- media for the studio's pages --------------------------------------------------------------------------


@router.get("/media/{asset_id}")
async def studio_media(
    asset_id: uuid.UUID, user: StudioUserDep, session: SessionDep, settings: SettingsDep
) -> Response:
    asset = await session.get(MediaAsset, asset_id)
    if asset is None or asset.tenant_id != user.principal.tenant_id:
        raise StudioNotFound()
    try:
        path = media_file(settings, asset)
    except ValueError:
        raise StudioNotFound() from None
    if not path.is_file():
        raise StudioNotFound()
    # Only the media types the pipeline makes are served as such; anything else is a download, never a page.
    known = asset.mime_type.split(";", 1)[0].strip().lower() in EXTENSIONS
    return FileResponse(
        path,
        media_type=asset.mime_type if known else "application/octet-stream",
        content_disposition_type="inline" if known else "attachment",
        filename=path.name,
        headers={
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
