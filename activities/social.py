"""One social post per platform from a blog post, each within its platform's limits."""

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.blog import gather_or_cancel
from activities.deps import StageDeps
from activities.jobs import INVALID_INPUT, ArtifactWriter, ParamProblems, StageRun, execute_stage, fail_job
from activities.personas import company_context, persona_profile
from activities.prompts import render
from models.channels import PlatformRules
from models.contracts import StageInput, StageResult
from models.enums import JobType, Platform, PublishState
from models.generation import PLATFORM_ASPECT_RATIOS, PLATFORM_LIMITS, PlatformLimit, SocialPostDraft
from models.job_params import SocialParams
from models.tables import BlogPost, BlogPostRevision, Channel, Persona, SocialPost, Topic
from providers.base import AIInvalidOutputError

ELLIPSIS = "\u2026"
# Enough of the post for a social teaser; the whole 5,000 words once per platform would only cost tokens.
ARTICLE_PROMPT_CHARS = 12_000
# When the trailing link-and-hashtags block takes more than this share of the limit, hashtags go first.
TAIL_SHARE = 0.5

_HASHTAG = re.compile(r"(?<!\S)#\w+")
_SPACE = re.compile(r"\s")
_TRAILING = " \t\n,;:.!?-\u2013\u2014"


# ---- the last resort: fitting a text that the model would not shorten ----------------------------------------


@dataclass(frozen=True)
class FittedText:
    text: str
    hashtags: list[str] = field(default_factory=list)


def _is_tail_token(token: str) -> bool:
    return token.startswith(("http://", "https://")) or bool(_HASHTAG.fullmatch(token))


def split_tail(text: str) -> tuple[str, str]:
    """(body, tail): the tail is the trailing lines that hold only links and hashtags."""
    lines = text.rstrip().split("\n")
    cut = len(lines)
    while cut > 0 and (not lines[cut - 1].strip() or all(_is_tail_token(t) for t in lines[cut - 1].split())):
        cut -= 1
    body = "\n".join(lines[:cut]).rstrip()
    tail = "\n".join(lines[cut:]).strip()
    return (body, tail) if body else (text.strip(), "")


def drop_last_hashtag(text: str) -> str | None:
    """The text without its last hashtag, or None when it has none."""
    matches = list(_HASHTAG.finditer(text))
    if not matches:
        return None
    last = matches[-1]
    return (text[: last.start()].rstrip(" \t") + text[last.end() :]).strip()


def shorten_at_word(text: str, max_chars: int) -> str:
    """At most max_chars, cut at a word boundary and ending in an ellipsis; never in the middle of a word
    unless the text has no space before the limit at all (one giant "word", e.g. a URL)."""
    text = text.strip()
    if len(text) <= max_chars:
        return text
    room = max(0, max_chars - len(ELLIPSIS))
    # One character past the room: a space exactly there means the text up to the room ends on a whole word.
    window = text[: room + 1]
    boundaries = [m.start() for m in _SPACE.finditer(window)]
    head = text[: boundaries[-1]] if boundaries and boundaries[-1] > 0 else text[:room]
    return head.rstrip(_TRAILING) + ELLIPSIS


def fit_to_limit(text: str, hashtags: list[str], platform: Platform, limit: PlatformLimit | None = None) -> FittedText:
    """A post the platform accepts: excess hashtags dropped (Instagram: 30), then the prose shortened at a word
    boundary so that the trailing link and hashtags survive."""
    limit = limit or PLATFORM_LIMITS[platform]
    original = text.strip()
    text = original
    tags = list(dict.fromkeys(t.strip().lstrip("#") for t in hashtags if t.strip().lstrip("#")))
    if limit.max_hashtags is not None:
        while text.count("#") > limit.max_hashtags:
            fewer = drop_last_hashtag(text)
            if fewer is None:
                break
            text = fewer
        tags = tags[: limit.max_hashtags]
    if len(text) > limit.max_chars:
        body, tail = split_tail(text)
        while tail and len(tail) > limit.max_chars * TAIL_SHARE:
            fewer = drop_last_hashtag(tail)
            if fewer is None:
                break
            tail = fewer
        room = limit.max_chars - len(tail) - 2  # 2: the blank line between body and tail
        if tail and room > len(ELLIPSIS) + 10:
            text = f"{shorten_at_word(body, room)}\n\n{tail}"
        else:
            text = shorten_at_word(text, limit.max_chars)
    # Hashtags that were in the text and were cut out are no longer used.
    cut_out = {
        t.casefold()
        for t in tags
        if f"#{t}".casefold() in original.casefold() and f"#{t}".casefold() not in text.casefold()
    }
    return FittedText(text=text, hashtags=[t for t in tags if t.casefold() not in cut_out])


def check_draft(draft: SocialPostDraft, platform: Platform, limit: PlatformLimit | None = None) -> list[str]:
    problems = draft.check_limits(limit)
    if draft.platform != platform:
        problems.insert(0, f"platform is {draft.platform.value!r}; this post is for {platform.value!r}")
    return problems


def read_platforms(raw: object) -> tuple[list[Platform], str | None]:
    """The platforms in the order asked for, each once; or an error message."""
    if isinstance(raw, str):
        raw = [raw]
    if not raw:
        return [], None
    if not isinstance(raw, list):
        return [], f"platforms must be a list of platform names, got {raw!r}"
    known = {p.value for p in Platform}
    unknown = [str(p) for p in raw if str(p).strip().lower() not in known]
    if unknown:
        return [], f"unknown platforms {unknown}; known: {', '.join(sorted(known))}"
    return list(dict.fromkeys(Platform(str(p).strip().lower()) for p in raw)), None


SOCIAL_PARAM_PROBLEMS: ParamProblems = {
    "platforms": lambda value: read_platforms(value)[1] or f"platforms must be a list of platform names, got {value!r}"
}


def article_excerpt(markdown: str) -> str:
    """The post without its source list, cut to ARTICLE_PROMPT_CHARS."""
    article = markdown.split("\n## Sources\n", 1)[0].strip()
    return article if len(article) <= ARTICLE_PROMPT_CHARS else article[:ARTICLE_PROMPT_CHARS].rstrip() + "\n...(cut)"


# ---- the stage ----------------------------------------------------------------------------------------------


@dataclass
class SocialRequest:
    post: BlogPost
    revision: BlogPostRevision
    topic: Topic | None
    persona: Persona | None
    platforms: list[Platform]
    link: str


class SocialStage:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="generate_social")
    async def generate_social(self, stage: StageInput) -> StageResult:
        return await execute_stage(self.deps, stage, JobType.GENERATE_SOCIAL, self._social, SOCIAL_PARAM_PROBLEMS)

    async def _read_request(self, run: StageRun) -> SocialRequest:
        job = run.job
        params = run.params_as(SocialParams)
        platforms = list(dict.fromkeys(params.platforms))
        if not platforms:
            await fail_job(run, "the job names no platforms to write social posts for")
        link = (params.link_url or "").strip()
        if link and not link.startswith(("http://", "https://")):
            await fail_job(run, f"link_url must be an http(s) URL, got {link!r}", INVALID_INPUT)
        if job.blog_post_id is None:
            await fail_job(run, "the job names no blog post to turn into social posts")
        async with self.deps.db.session() as session:
            post = await session.get(BlogPost, job.blog_post_id)
            if post is None or post.company_id != run.company.id or post.tenant_id != job.tenant_id:
                await fail_job(run, f"blog post {job.blog_post_id} does not exist for this company")
            revision = (
                await session.exec(
                    select(BlogPostRevision).where(
                        col(BlogPostRevision.blog_post_id) == post.id,
                        col(BlogPostRevision.revision) == post.current_revision,
                    )
                )
            ).first()
            if revision is None:
                await fail_job(
                    run, f"blog post {post.id} has no text yet (revision {post.current_revision} is missing)"
                )
            topic = await session.get(Topic, post.topic_id)
            persona = await session.get(Persona, topic.persona_id) if topic is not None else None
        # A pipeline knows where its blog posts will live only as a pattern: https://example.com/blog/{slug}
        link = link.replace("{slug}", post.slug)
        return SocialRequest(post, revision, topic, persona, platforms, link)

    async def _social(self, run: StageRun) -> tuple[ArtifactWriter, dict[str, Any]]:
        await run.progress(5, "reading the blog post")
        request = await self._read_request(run)
        post = request.post
        context = company_context(run)
        values: dict[str, Any] = {
            **context,
            "blog_title": post.title,
            "meta_description": post.meta_description,
            "keywords": ", ".join(post.keywords),
            "persona": persona_profile(request.persona) if request.persona else "(no persona recorded)",
            "article": article_excerpt(request.revision.markdown),
            "link_line": f"Link to the post: {request.link}"
            if request.link
            else "No link is known yet: do not add or invent one.",
            "link": request.link or "(none)",
        }
        sample = {
            **context,
            "blog_title": post.title,
            "topic_title": request.topic.title if request.topic else post.title,
            "url": request.link,
        }
        total = len(request.platforms)
        done = 0

        limits = await self._limits(run.company.id, request.platforms)

        async def write_post(platform: Platform) -> SocialPostDraft:
            nonlocal done
            limit = limits[platform]
            platform_values = {
                **values,
                "platform": platform.value,
                "max_chars": limit.max_chars,
                "hashtag_rule": f"at most {limit.max_hashtags} hashtags"
                if limit.max_hashtags is not None
                else "no fixed hashtag limit, but use only a few",
                "aspect_ratio": PLATFORM_ASPECT_RATIOS[platform],
            }
            platform_sample = {**sample, "platform": platform.value}
            # The last answer that parsed: when it is still over the limit after the repair request, it is
            # the text to rewrite rather than a reason to fail the whole job.
            parsed: list[SocialPostDraft] = []

            def validate(draft: SocialPostDraft) -> list[str]:
                parsed.append(draft)
                return check_draft(draft, platform, limit)

            try:
                draft = await self.deps.router.generate_json(
                    render("social_post", **platform_values),
                    SocialPostDraft,
                    sample_context=platform_sample,
                    validate=validate,
                )
            except AIInvalidOutputError:
                if not parsed:
                    raise
                draft = await self._rewrite(
                    parsed[-1].model_copy(update={"platform": platform}), platform_values, platform_sample, limit
                )
            done += 1
            await run.progress(
                10 + 75 * done // total, f"wrote the {platform.value} post ({len(draft.text)} characters)"
            )
            return draft

        await run.progress(10, f"writing posts for {', '.join(p.value for p in request.platforms)}")
        drafts = await gather_or_cancel(write_post(p) for p in request.platforms)
        for draft, platform in zip(drafts, request.platforms, strict=True):
            problems = check_draft(draft, platform, limits[platform])
            if problems:
                await fail_job(
                    run, f"the {platform.value} post does not fit the platform: {'; '.join(problems)}", "InvalidOutput"
                )
        is_sample = run.used_offline_provider()
        job = run.job
        # Filled by the writer from the rows it stores or finds, so ids always match the artifacts.
        summary: dict[str, Any] = {"posts": [], "sample": is_sample}

        async def write(session: AsyncSession) -> list[uuid.UUID]:
            # One post per (job, platform): a retried attempt finds the rows an earlier attempt stored.
            stored = {
                Platform(row.platform): row
                for row in (await session.exec(select(SocialPost).where(col(SocialPost.job_id) == job.id))).all()
            }
            rows: list[SocialPost] = []
            for draft, platform in zip(drafts, request.platforms, strict=True):
                row = stored.get(platform)
                if row is None:
                    row = SocialPost(
                        tenant_id=job.tenant_id,
                        company_id=run.company.id,
                        blog_post_id=post.id,
                        job_id=job.id,
                        platform=platform,
                        text=draft.text,
                        hashtags=[t.strip().lstrip("#") for t in draft.hashtags if t.strip().lstrip("#")],
                        image_prompt=draft.image_prompt,
                        publish_state=PublishState.DRAFT,
                        is_sample=is_sample,
                    )
                    session.add(row)
                rows.append(row)
            await session.flush()
            summary["posts"] = [
                {"id": str(r.id), "platform": Platform(r.platform).value, "chars": len(r.text)} for r in rows
            ]
            return [r.id for r in rows]

        return write, summary

    async def _limits(self, company_id: uuid.UUID, platforms: list[Platform]) -> dict[Platform, PlatformLimit]:
        """Each platform's limit as the company's connected channel counts it (a Mastodon instance says its own),
        else the platform's. Measured in code points, which never undercounts Bluesky's graphemes or Mastodon's
        links (23 characters each, however long)."""
        limits = {platform: PLATFORM_LIMITS[platform] for platform in platforms}
        async with self.deps.db.session() as session:
            rows = await session.exec(
                select(Channel).where(
                    col(Channel.company_id) == company_id, col(Channel.platform).in_([p.value for p in platforms])
                )
            )
            for channel in rows.all():
                rules = PlatformRules.model_validate(channel.rules) if channel.rules else None
                platform = Platform(channel.platform)
                if rules is not None and rules.max_chars > 0:
                    limits[platform] = limits[platform].model_copy(update={"max_chars": rules.max_chars})
        return limits

    async def _rewrite(
        self, draft: SocialPostDraft, values: dict[str, Any], sample: dict[str, Any], limit: PlatformLimit
    ) -> SocialPostDraft:
        """Over the limit after the repair request: one explicit rewrite, then shortening in code as the last resort."""
        platform = draft.platform
        if not draft.check_limits(limit):
            return draft
        try:
            rewritten = await self.deps.router.generate_json(
                render(
                    "social_rewrite",
                    **values,
                    chars=len(draft.text),
                    hashtag_count=max(len(draft.hashtags), draft.text.count("#")),
                    # A little headroom: models count characters loosely.
                    target_chars=int(limit.max_chars * 0.9),
                    text=draft.text,
                    hashtags=", ".join(draft.hashtags) or "(none)",
                ),
                SocialPostDraft,
                sample_context=sample,
            )
            rewritten = rewritten.model_copy(update={"platform": platform})
            if not rewritten.check_limits(limit):
                return rewritten
            if len(rewritten.text) < len(draft.text):
                draft = rewritten
        except AIInvalidOutputError:
            activity.logger.warning("the %s rewrite came back unusable; shortening the draft instead", platform.value)
        fitted = fit_to_limit(draft.text, draft.hashtags, platform, limit)
        return draft.model_copy(update={"text": fitted.text, "hashtags": fitted.hashtags})
