"""The social stage on a real database: one post per platform within its limits, over-limit drafts rewritten
(repair request, then an explicit rewrite, then shortening at a word boundary), and the pure fitting step."""

import re
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.social import SocialStage, fit_to_limit, read_platforms, shorten_at_word, split_tail
from models.channels import PlatformRules
from models.db import Database
from models.enums import JobStatus, JobType, Platform, PublishState
from models.generation import PLATFORM_LIMITS, SocialPostDraft
from models.tables import BlogPost, Channel, Company, SocialPost
from providers.structured import SchemaArg
from tests.support.stack import Tenant
from tests.support.stage_rows import (
    RecordingProvider,
    add_dna,
    add_persona,
    add_topic,
    blog_post_with_revision,
    job_row,
    new_company,
    new_job,
    reopen_job,
    rows,
    run_stage,
    stage_deps,
)

LINK = "https://acme.example/blog/halve-your-downtime"
ARTICLE = (
    "# Halve your downtime\n\n## Why it matters\n\nUnplanned downtime costs small plants a fortune [1].\n\n"
    "## Sources\n\n- [1] [Study](https://study.example)\n"
)
LONG_BODY = (
    "Unplanned downtime is the quiet budget killer of small plants, and most of it starts long before a machine "
    "stops: in planning, in handovers and in spare parts nobody ordered. We looked at what the best teams do "
    "differently and wrote down five habits that any plant manager can start this week without new software, "
    "or new budget."
)
LONG_X = f"{LONG_BODY}\n\n{LINK}\n\n#downtime #maintenance"


class LongFirstForX(RecordingProvider):
    """Answers the first `long_answers` X drafts with a 400-character post; every other answer is the sample."""

    def __init__(self, long_answers: int) -> None:
        super().__init__()
        self.long_answers = long_answers

    def sample_for(self, schema: SchemaArg, prompt: str, context: dict[str, Any]) -> Any:
        if schema is SocialPostDraft and context.get("platform") == "x" and self.long_answers > 0:
            self.long_answers -= 1
            return {
                "platform": "x",
                "text": LONG_X,
                "hashtags": ["downtime", "maintenance"],
                "image_prompt": "a quiet plant",
            }
        return super().sample_for(schema, prompt, context)


async def post_to_share(db: Database, tenant: Tenant) -> tuple[Company, BlogPost]:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    topic = await add_topic(db, await add_persona(db, company))
    return company, await blog_post_with_revision(db, topic, ARTICLE)


async def x_post(db: Database, tenant: Tenant, provider: RecordingProvider) -> SocialPost:
    company, post = await post_to_share(db, tenant)
    job = await new_job(
        db, company, JobType.GENERATE_SOCIAL, blog_post_id=post.id, params={"platforms": ["x"], "link_url": LINK}
    )
    result = await run_stage(SocialStage(stage_deps(db, provider)).generate_social, job.id)
    (row,) = await rows(db, SocialPost, SocialPost.job_id == job.id)
    assert result.artifact_ids == [row.id] and result.summary["posts"][0]["chars"] == len(row.text)
    assert SocialPostDraft(platform=Platform.X, text=row.text, hashtags=row.hashtags).check_limits() == []
    return row


async def test_one_post_per_platform_within_its_limits(db: Database, tenant: Tenant) -> None:
    company, post = await post_to_share(db, tenant)
    platforms = ["linkedin", "x", "instagram", "facebook", "threads", "bluesky"]
    job = await new_job(
        db, company, JobType.GENERATE_SOCIAL, blog_post_id=post.id, params={"platforms": platforms, "link_url": LINK}
    )
    provider = RecordingProvider()

    result = await run_stage(SocialStage(stage_deps(db, provider)).generate_social, job.id)

    stored = {row.id: row for row in await rows(db, SocialPost, SocialPost.job_id == job.id)}
    assert len(stored) == 6
    posts = [stored[i] for i in result.artifact_ids]
    assert [p.platform for p in posts] == platforms
    for row in posts:
        platform = Platform(row.platform)
        assert len(row.text) <= PLATFORM_LIMITS[platform].max_chars
        assert SocialPostDraft(platform=platform, text=row.text, hashtags=row.hashtags).check_limits() == []
        assert row.publish_state == PublishState.DRAFT and row.publish_at is None
        assert row.blog_post_id == post.id and row.company_id == company.id and row.is_sample
        assert row.image_prompt and LINK in row.text
        assert all(not tag.startswith("#") for tag in row.hashtags)
    assert result.summary["posts"] == [{"id": str(p.id), "platform": p.platform, "chars": len(p.text)} for p in posts]
    # Each platform's prompt names its own limit and carries the article without its source list.
    (x_prompt,) = provider.sent('- `platform`: "x"')
    assert (
        "at most 280 characters" in x_prompt and "Unplanned downtime costs" in x_prompt and "## Sources" not in x_prompt
    )
    assert "at most 30 hashtags" in provider.sent('- `platform`: "instagram"')[0]
    assert "no fixed hashtag limit" in provider.sent('- `platform`: "linkedin"')[0]
    done = await job_row(db, job.id)
    assert done.status == JobStatus.COMPLETED and done.progress == 100


async def test_a_link_pattern_gets_the_posts_slug(db: Database, tenant: Tenant) -> None:
    company, post = await post_to_share(db, tenant)
    params = {"platforms": ["linkedin"], "link_url": "https://acme.example/blog/{slug}"}
    job = await new_job(db, company, JobType.GENERATE_SOCIAL, blog_post_id=post.id, params=params)
    await run_stage(SocialStage(stage_deps(db, RecordingProvider())).generate_social, job.id)
    (row,) = await rows(db, SocialPost, SocialPost.job_id == job.id)
    assert f"https://acme.example/blog/{post.slug}" in row.text and "{slug}" not in row.text


async def test_social_posts_are_stored_once_per_job_and_platform(db: Database, tenant: Tenant) -> None:
    company, post = await post_to_share(db, tenant)
    job = await new_job(
        db, company, JobType.GENERATE_SOCIAL, blog_post_id=post.id, params={"platforms": ["x", "linkedin", "x"]}
    )
    stage = SocialStage(stage_deps(db))
    first = await run_stage(stage.generate_social, job.id)
    assert [p["platform"] for p in first.summary["posts"]] == ["x", "linkedin"]
    assert await run_stage(stage.generate_social, job.id) == first
    await reopen_job(db, job.id)
    assert (await run_stage(stage.generate_social, job.id)).artifact_ids == first.artifact_ids
    assert len(await rows(db, SocialPost, SocialPost.blog_post_id == post.id)) == 2


async def test_an_over_limit_draft_is_repaired(db: Database, tenant: Tenant) -> None:
    provider = LongFirstForX(long_answers=1)
    row = await x_post(db, tenant, provider)
    (repair,) = provider.repairs
    assert "text has 400 characters; x allows 280" in repair
    assert provider.sent("is too long for the platform") == []
    assert "\u2026" not in row.text


async def test_a_draft_still_over_the_limit_gets_one_explicit_rewrite(db: Database, tenant: Tenant) -> None:
    provider = LongFirstForX(long_answers=2)
    row = await x_post(db, tenant, provider)
    (rewrite,) = provider.sent("is too long for the platform")
    assert "it has 400 characters" in rewrite and "at most 280 characters" in rewrite
    assert "Rewrite it to at most 252 characters" in rewrite and LONG_BODY in rewrite and LINK in rewrite
    assert "\u2026" not in row.text


async def test_a_rewrite_still_too_long_is_shortened_at_a_word_boundary(db: Database, tenant: Tenant) -> None:
    provider = LongFirstForX(long_answers=3)
    row = await x_post(db, tenant, provider)
    assert len(provider.sent("is too long for the platform")) == 1
    body, tail = row.text.split("\n\n", 1)
    assert tail == f"{LINK}\n\n#downtime #maintenance" and row.hashtags == ["downtime", "maintenance"]
    assert body.endswith("\u2026")
    kept = body.removesuffix("\u2026")
    assert LONG_BODY.startswith(kept) and LONG_BODY[len(kept)] in " ,.", "cut at the end of a word"


@pytest.mark.parametrize(
    ("params", "error_type", "message"),
    [
        ({}, "MissingInput", "the job names no platforms to write social posts for"),
        ({"platforms": []}, "MissingInput", "the job names no platforms to write social posts for"),
        (
            {"platforms": ["x", "myspace"]},
            "InvalidInput",
            "unknown platforms ['myspace']; known: bluesky, facebook, instagram, linkedin, mastodon, threads, x",
        ),
        ({"platforms": {"x": 1}}, "InvalidInput", "platforms must be a list of platform names, got {'x': 1}"),
        (
            {"platforms": ["x"], "link_url": "acme.example/post"},
            "InvalidInput",
            "link_url must be an http(s) URL, got 'acme.example/post'",
        ),
    ],
)
async def test_social_inputs_that_fail_the_job(
    db: Database, tenant: Tenant, params: dict[str, Any], error_type: str, message: str
) -> None:
    company, post = await post_to_share(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_SOCIAL, blog_post_id=post.id, params=params)
    with pytest.raises(ApplicationError) as failure:
        await run_stage(SocialStage(stage_deps(db)).generate_social, job.id)
    assert failure.value.type == error_type and failure.value.non_retryable
    ended = await job_row(db, job.id)
    assert ended.status == JobStatus.FAILED and ended.error_message == message
    assert await rows(db, SocialPost, SocialPost.job_id == job.id) == []


async def test_social_needs_a_blog_post(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_SOCIAL, params={"platforms": ["x"]})
    with pytest.raises(ApplicationError, match="names no blog post") as failure:
        await run_stage(SocialStage(stage_deps(db)).generate_social, job.id)
    assert failure.value.type == "MissingInput"
    assert (await job_row(db, job.id)).status == JobStatus.FAILED


# ---- the pure fitting step ----------------------------------------------------------------------------------


def test_platforms_are_read_in_order_once_each() -> None:
    assert read_platforms(["LinkedIn", "x", "linkedin"]) == ([Platform.LINKEDIN, Platform.X], None)
    assert read_platforms("bluesky") == ([Platform.BLUESKY], None)
    assert read_platforms(None) == ([], None)


@pytest.mark.parametrize("limit", range(20, 89, 6))
def test_shortening_never_cuts_a_word(limit: int) -> None:
    text = "Downtime starts in planning, in handovers and in spare parts that nobody ordered on time."
    short = shorten_at_word(text, limit)
    assert len(short) <= limit and short.endswith("\u2026")
    kept = short.removesuffix("\u2026")
    assert text.startswith(kept) and text[len(kept)] in " ,."
    assert not kept.endswith((",", " "))


def test_text_within_the_limit_is_left_alone() -> None:
    assert shorten_at_word("  short enough ", 50) == "short enough"
    assert fit_to_limit("Fine as it is #ops", ["ops"], Platform.X).text == "Fine as it is #ops"
    # One giant word has no boundary to cut at: it is cut hard rather than left over the limit.
    assert shorten_at_word("x" * 50, 10) == "x" * 9 + "\u2026"


def test_the_link_and_hashtags_survive_shortening() -> None:
    assert split_tail(LONG_X) == (LONG_BODY, f"{LINK}\n\n#downtime #maintenance")
    assert split_tail("#only #tags") == ("#only #tags", "")
    fitted = fit_to_limit(LONG_X, ["#downtime", "maintenance"], Platform.BLUESKY)
    assert len(fitted.text) <= 300 and fitted.text.endswith(f"{LINK}\n\n#downtime #maintenance")
    assert fitted.hashtags == ["downtime", "maintenance"]


def test_hashtags_that_crowd_out_the_text_are_dropped_first() -> None:
    tags = [f"tag{n}" for n in range(30)]
    text = LONG_BODY + "\n\n" + " ".join(f"#{t}" for t in tags)
    fitted = fit_to_limit(text, tags, Platform.X)
    assert len(fitted.text) <= 280 and "\u2026" in fitted.text
    kept = re.findall(r"#(\w+)", fitted.text)
    assert kept == tags[: len(kept)] and fitted.hashtags == kept and len(kept) < 30


def test_instagram_keeps_at_most_30_hashtags() -> None:
    tags = [f"tag{n}" for n in range(40)]
    text = "Five habits of plants with less downtime. Link in bio.\n\n" + " ".join(f"#{t}" for t in tags)
    fitted = fit_to_limit(text, tags, Platform.INSTAGRAM)
    assert fitted.text.count("#") == 30 and fitted.hashtags == tags[:30]
    assert fitted.text.startswith("Five habits") and "#tag29" in fitted.text and "#tag30" not in fitted.text
    assert SocialPostDraft(platform=Platform.INSTAGRAM, text=fitted.text, hashtags=fitted.hashtags).check_limits() == []


async def test_a_mastodon_post_is_written_to_its_instances_own_limit(db: Database, tenant: Tenant) -> None:
    company, post = await post_to_share(db, tenant)
    async with db.session() as session:
        session.add(
            Channel(
                tenant_id=tenant.id,
                company_id=company.id,
                platform=Platform.MASTODON,
                service="https://small.example",
                account_id="1",
                handle="@acme@small.example",
                credentials="(not read by the social stage)",
                rules=PlatformRules(max_chars=200, url_length=23).model_dump(mode="json", by_alias=True),
            )
        )
        await session.commit()
    job = await new_job(
        db, company, JobType.GENERATE_SOCIAL, blog_post_id=post.id, params={"platforms": ["mastodon"], "link_url": LINK}
    )
    provider = RecordingProvider()
    await run_stage(SocialStage(stage_deps(db, provider)).generate_social, job.id)
    (row,) = await rows(db, SocialPost, SocialPost.job_id == job.id)
    # The instance allows 200 (not Mastodon's default 500): the prompt says so and the post fits.
    assert "at most 200 characters" in provider.sent('- `platform`: "mastodon"')[0]
    assert len(row.text) <= 200 and LINK in row.text
