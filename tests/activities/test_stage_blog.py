"""The blog stage on a real database through the offline provider: a 4-10 page post with valid citations and
SEO fields, one bounded expansion round for short drafts, revisions with the supervisor's feedback, and the
pure steps (sources, outline scaling, citation renumbering, slugs)."""

import re
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.blog import (
    BlogStage,
    assemble_markdown,
    clamp_target_words,
    fit_outline,
    free_slug,
    merge_sources,
    renumber_citations,
    sections_to_expand,
)
from models.db import Database
from models.enums import BlogPostStatus, JobStatus, JobType
from models.generation import BlogOutline, BlogSection, OutlineSection, Source
from models.tables import BlogPost, BlogPostRevision, Company, Topic
from providers.structured import SchemaArg
from tests.support.stack import Tenant
from tests.support.stage_rows import (
    DNA_SOURCES,
    RecordingProvider,
    add_dna,
    add_persona,
    add_topic,
    job_row,
    new_company,
    new_job,
    reopen_job,
    rows,
    run_stage,
    stage_deps,
)

MARKER = re.compile(r"\[(\d{1,3})\]")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class ShortSections(RecordingProvider):
    """Writes every section at half its length, and expansions at full length unless `stubborn`."""

    def __init__(self, stubborn: bool = False) -> None:
        super().__init__()
        self.stubborn = stubborn

    def sample_for(self, schema: SchemaArg, prompt: str, context: dict[str, Any]) -> Any:
        if schema is BlogSection and (self.stubborn or "came out too short" not in prompt):
            context = {**context, "words": int(context["words"]) // 2}
        return super().sample_for(schema, prompt, context)


async def topic_for_post(db: Database, tenant: Tenant) -> tuple[Company, Topic]:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    return company, await add_topic(db, await add_persona(db, company))


async def revision_of(db: Database, post_id: Any, number: int) -> BlogPostRevision:
    (revision,) = await rows(
        db, BlogPostRevision, BlogPostRevision.blog_post_id == post_id, BlogPostRevision.revision == number
    )
    return revision


def check_article(markdown: str, revision: BlogPostRevision) -> None:
    """Markdown with a title, sections, and a source list that every marker resolves to."""
    citations = revision.citations
    assert markdown.startswith("# ") and markdown.count("\n## ") >= 4
    assert [c["number"] for c in citations] == list(range(1, len(citations) + 1))
    assert citations and all(c["url"].startswith("https://") for c in citations)
    article, sources = markdown.split("\n## Sources\n")
    cited = {int(n) for n in MARKER.findall(article)}
    assert cited == set(range(1, len(citations) + 1)), "every marker resolves and every listed source is cited"
    for citation in citations:
        assert f"- [{citation['number']}] [" in sources and f"]({citation['url']})" in sources


@pytest.mark.parametrize(("requested", "target"), [(None, 2000), (3500, 3500), (9000, 5000), (100, 2000)])
async def test_a_blog_post_fits_its_target_and_cites_real_sources(
    db: Database, tenant: Tenant, requested: int | None, target: int
) -> None:
    company, topic = await topic_for_post(db, tenant)
    params = {} if requested is None else {"target_words": requested}
    job = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, params=params)
    provider = RecordingProvider()

    result = await run_stage(BlogStage(stage_deps(db, provider)).generate_blogpost, job.id)

    (post,) = await rows(db, BlogPost, BlogPost.topic_id == topic.id)
    revision = await revision_of(db, post.id, 1)
    assert result.artifact_ids == [post.id]
    assert post.target_words == target and post.current_revision == 1 and post.status == BlogPostStatus.DRAFT
    assert post.title and 20 <= len(post.meta_description) <= 160 and SLUG.match(post.slug) and post.keywords
    assert post.is_sample and revision.job_id == job.id and revision.feedback is None
    check_article(revision.markdown, revision)
    assert revision.markdown.startswith(f"# {post.title}\n")
    # "About 2,000 to 5,000 words": the post lands on its target, and its reported pages on 4 to 10.
    assert 0.95 * target <= revision.word_count <= 1.02 * target
    pages = round(revision.word_count / 500, 1)
    assert 4 <= pages <= 10
    assert result.summary == {
        "blogPostId": str(post.id),
        "title": post.title,
        "words": revision.word_count,
        "pages": pages,
        "revision": 1,
        "sources": len(revision.citations),
        "sample": True,
    }
    # The company's own research sources are offered for citation next to the topic's research.
    (outline_prompt,) = provider.sent("Plan a blog post")
    assert f"about {target} words" in outline_prompt
    assert all(s["url"] in outline_prompt for s in DNA_SOURCES)
    sections = provider.sent("writing one section of a blog post")
    assert len(sections) == revision.markdown.count("\n## ") - 1  # all but the source list
    assert provider.sent("came out too short") == []
    done = await job_row(db, job.id)
    assert done.status == JobStatus.COMPLETED and done.result_data == result.to_result_data()


async def test_short_sections_get_one_expansion_round(db: Database, tenant: Tenant) -> None:
    company, topic = await topic_for_post(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, params={"target_words": 3000})
    provider = ShortSections()

    result = await run_stage(BlogStage(stage_deps(db, provider)).generate_blogpost, job.id)

    expansions = provider.sent("came out too short")
    sections = provider.sent("writing one section of a blog post")
    assert 0 < len(expansions) <= len(sections)
    assert result.summary["words"] >= 0.9 * 3000

    # A model that stays short: exactly one round, then the post is stored as it is.
    stubborn = ShortSections(stubborn=True)
    second = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, params={"target_words": 3000})
    short = await run_stage(BlogStage(stage_deps(db, stubborn)).generate_blogpost, second.id)
    expanded = [re.findall(r'The section "([^"]+)"', prompt)[0] for prompt in stubborn.sent("came out too short")]
    assert expanded and len(set(expanded)) == len(expanded), "each short section is asked once, in one round"
    assert short.summary["words"] < 0.9 * 3000
    assert (await job_row(db, second.id)).status == JobStatus.COMPLETED


async def test_a_revision_adds_revision_two_with_the_feedback(db: Database, tenant: Tenant) -> None:
    company, topic = await topic_for_post(db, tenant)
    first = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, params={"target_words": 2500})
    created = await run_stage(BlogStage(stage_deps(db)).generate_blogpost, first.id)
    post_id = created.artifact_ids[0]
    original = await revision_of(db, post_id, 1)
    async with db.session() as session:
        post = await session.get(BlogPost, post_id)
        assert post is not None
        post.status = BlogPostStatus.CHANGES_REQUESTED.value
        session.add(post)
        await session.commit()

    feedback = "Cut the jargon, add a case study from a bakery, and end with a checklist."
    job = await new_job(
        db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, blog_post_id=post_id, params={"feedback": feedback}
    )
    provider = RecordingProvider()
    result = await run_stage(BlogStage(stage_deps(db, provider)).generate_blogpost, job.id)

    assert result.artifact_ids == [post_id] and result.summary["revision"] == 2
    revised = await revision_of(db, post_id, 2)
    assert revised.feedback == feedback and revised.job_id == job.id
    check_article(revised.markdown, revised)
    (post,) = await rows(db, BlogPost, BlogPost.id == post_id)
    assert post.current_revision == 2 and post.status == BlogPostStatus.DRAFT
    assert post.target_words == 2500, "a revision keeps the post's length unless the job asks for another"
    assert post.title == result.summary["title"] and SLUG.match(post.slug)
    assert len(await rows(db, BlogPost, BlogPost.topic_id == topic.id)) == 1
    # The feedback reaches the outline and every section; the outline also sees the reviewed version.
    (outline_prompt,) = provider.sent("Plan a blog post")
    assert feedback in outline_prompt and original.markdown[:300] in outline_prompt
    sections = provider.sent("writing one section of a blog post")
    assert sections and all(feedback in prompt for prompt in sections)

    # A retry that finds revision 2 stored adds no revision 3.
    await reopen_job(db, job.id)
    again = await run_stage(BlogStage(stage_deps(db)).generate_blogpost, job.id)
    assert again.artifact_ids == [post_id] and again.summary["revision"] == 2
    assert len(await rows(db, BlogPostRevision, BlogPostRevision.blog_post_id == post_id)) == 2


async def test_posts_are_stored_once_per_job_and_slugs_do_not_collide(db: Database, tenant: Tenant) -> None:
    company, topic = await topic_for_post(db, tenant)
    stage = BlogStage(stage_deps(db))
    job = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id)
    first = await run_stage(stage.generate_blogpost, job.id)
    assert await run_stage(stage.generate_blogpost, job.id) == first
    await reopen_job(db, job.id)
    assert (await run_stage(stage.generate_blogpost, job.id)).artifact_ids == first.artifact_ids
    assert len(await rows(db, BlogPost, BlogPost.company_id == company.id)) == 1

    # Another post on the same topic gets the same slug from the offline outline: it must not collide.
    other = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id)
    await run_stage(stage.generate_blogpost, other.id)
    slugs = sorted(p.slug for p in await rows(db, BlogPost, BlogPost.company_id == company.id))
    assert len(set(slugs)) == 2 and slugs[1] == f"{slugs[0]}-2"


async def test_blog_inputs_that_fail_the_job(db: Database, tenant: Tenant) -> None:
    company, topic = await topic_for_post(db, tenant)
    stage = BlogStage(stage_deps(db))

    no_topic = await new_job(db, company, JobType.GENERATE_BLOGPOST)
    with pytest.raises(ApplicationError) as failure:
        await run_stage(stage.generate_blogpost, no_topic.id)
    assert failure.value.type == "MissingInput" and failure.value.non_retryable
    ended = await job_row(db, no_topic.id)
    assert ended.status == JobStatus.FAILED and ended.error_message == "the job names no topic to write about"

    bad_length = await new_job(
        db, company, JobType.GENERATE_BLOGPOST, topic_id=topic.id, params={"target_words": "long"}
    )
    with pytest.raises(ApplicationError) as failure:
        await run_stage(stage.generate_blogpost, bad_length.id)
    assert failure.value.type == "InvalidInput"
    assert (
        await job_row(db, bad_length.id)
    ).error_message == "target_words must be a whole number of words, got 'long'"

    other_company, other_topic = await topic_for_post(db, tenant)
    foreign = await new_job(db, company, JobType.GENERATE_BLOGPOST, topic_id=other_topic.id)
    with pytest.raises(ApplicationError, match="does not exist for this company"):
        await run_stage(stage.generate_blogpost, foreign.id)
    assert (
        await rows(db, BlogPost, BlogPost.company_id.in_([company.id, other_company.id]))  # type: ignore[attr-defined]
        == []
    )


# ---- the pure steps -----------------------------------------------------------------------------------------


def test_target_words_are_held_to_four_to_ten_pages() -> None:
    assert [clamp_target_words(v) for v in (None, "", 1000, 2000, "3000", 4200.7, 12000)] == [
        2000,
        2000,
        2000,
        2000,
        3000,
        4200,
        5000,
    ]
    assert clamp_target_words(None, default=3000) == 3000
    with pytest.raises(ValueError):
        clamp_target_words("ten pages")


def test_sources_are_merged_once_per_url() -> None:
    research = [Source(url="https://a.example/x/", title="A"), Source(url="https://b.example/y", title="B")]
    dna = [
        {"url": "HTTPS://A.example/x#top", "title": "A again"},
        {"url": "ftp://nope"},
        {"url": "https://c.example", "title": "C"},
    ]
    assert [s.url for s in merge_sources(research, dna)] == [
        "https://a.example/x/",
        "https://b.example/y",
        "https://c.example",
    ]


def test_outline_targets_are_scaled_to_the_post() -> None:
    sections = [OutlineSection(heading=f"Part {i}", key_points=["x"], target_words=300) for i in range(5)]
    outline = BlogOutline(
        title="A title",
        meta_description="A meta description long enough",
        slug="a-title",
        keywords=["k"],
        sections=sections,
    )
    assert abs(fit_outline(outline, 4000).target_words - 4000) <= 5
    assert fit_outline(outline, 2000).target_words == 2000


def test_the_shortest_sections_cover_the_shortfall() -> None:
    assert sections_to_expand([500, 500, 500, 500], [500] * 4, 2000) == []
    assert sections_to_expand([450, 450, 450, 450], [500] * 4, 2000) == []  # 90 % is long enough
    # 1300 of 2000: the two most behind their own targets make up the 500 missing words.
    assert sections_to_expand([100, 400, 300, 500], [500] * 4, 2000) == [0, 2]
    assert sections_to_expand([100, 100, 100], [500, 500, 500], 1500) == [0, 1, 2]


def test_citations_are_renumbered_to_the_cited_sources() -> None:
    sources = [Source(url=f"https://s{n}.example", title=f"S{n}") for n in range(1, 6)]
    bodies, cited = renumber_citations(["First [4] then [2][4].", "Later [5]. Plain [x]."], sources)
    assert bodies == ["First [1] then [2][1].", "Later [3]. Plain [x]."]
    assert [s.title for s in cited] == ["S4", "S2", "S5"]
    markdown = assemble_markdown("Title", [("One", bodies[0]), ("Two", bodies[1])], cited)
    assert markdown.startswith("# Title\n\n## One\n\nFirst [1]")
    assert (
        "## Sources\n\n- [1] [S4](https://s4.example)\n- [2] [S2](https://s2.example)\n- [3] [S5](https://s5.example)\n"
        in markdown
    )


def test_slugs_count_up_when_taken() -> None:
    assert free_slug("downtime", set()) == "downtime"
    assert free_slug("downtime", {"downtime", "downtime-2"}) == "downtime-3"
