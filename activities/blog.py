"""A long, cited blog post for one topic: research, outline, sections written in parallel, and its revisions."""

import asyncio
import functools
import math
import re
import uuid
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.deps import StageDeps
from activities.jobs import (
    INVALID_INPUT,
    OFFLINE_PROVIDER,
    ArtifactWriter,
    ParamProblems,
    StageRun,
    execute_stage,
    fail_job,
)
from activities.personas import company_context, latest_dna, persona_profile
from activities.prompts import render
from activities.steps import JobSteps, gather_draining
from models.contracts import StageInput, StageResult
from models.enums import BlogPostStatus, JobType
from models.generation import BlogOutline, BlogSection, OutlineSection, ResearchResult, Source
from models.job_params import BlogPostParams
from models.pipeline import PAGE_WORDS
from models.prose import CITATION, GROUPED_CITATION, count_words
from models.tables import BlogPost, BlogPostRevision, CompanyDNA, Persona, Topic

T = TypeVar("T")

# CONTRACT: 4 to 10 A4 pages of about 500 words each.
MIN_TARGET_WORDS = 4 * PAGE_WORDS
MAX_TARGET_WORDS = 10 * PAGE_WORDS
DEFAULT_TARGET_WORDS = MIN_TARGET_WORDS
BLOG_PARAM_PROBLEMS: ParamProblems = {
    "target_words": lambda value: f"target_words must be a whole number of words, got {value!r}",
}
# A post is long enough at 90 % of its target; below that the shortest sections get one expansion round.
LENGTH_TOLERANCE = 0.9
# Bounds of OutlineSection.target_words.
SECTION_MIN_WORDS = 100
SECTION_MAX_WORDS = 2000
# Sections are written in parallel, but not all sixteen at once: providers rate-limit bursts per key.
SECTION_CONCURRENCY = 6
MAX_SOURCES = 30
RESEARCH_PROMPT_CHARS = 8000
PREVIOUS_PROMPT_CHARS = 6000

_SLUG_PART = re.compile(r"[^a-z0-9]+")


# ---- pure steps ---------------------------------------------------------------------------------------------


def clamp_target_words(raw: object, default: int = DEFAULT_TARGET_WORDS) -> int:
    """The requested length held to 4..10 pages; ValueError when it is not a number at all."""
    if raw is None or raw == "":
        value = default
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = int(raw)
    else:
        value = int(str(raw).strip())
    return max(MIN_TARGET_WORDS, min(MAX_TARGET_WORDS, value))


def normalized_url(url: str) -> str:
    """One spelling per page, for de-duplication: scheme and host lowercase, no fragment, no trailing slash."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"), parts.query, ""))


def merge_sources(*groups: Iterable[Source | dict[str, Any]]) -> list[Source]:
    """The groups' sources in order, each URL once, at most MAX_SOURCES; malformed entries are skipped."""
    merged: list[Source] = []
    seen: set[str] = set()
    for group in groups:
        for entry in group:
            try:
                source = entry if isinstance(entry, Source) else Source.model_validate(entry)
            except ValueError:
                continue
            key = normalized_url(source.url)
            if key in seen:
                continue
            seen.add(key)
            merged.append(source)
    return merged[:MAX_SOURCES]


def numbered_sources(sources: list[Source]) -> str:
    if not sources:
        return "(no sources: write without citation markers)"
    return "\n".join(f"[{n}] {s.title or 'untitled'} - {s.url}" for n, s in enumerate(sources, start=1))


def dna_facts_with_sources(dna: CompanyDNA | None, sources: list[Source], limit: int = 40) -> str:
    """The DNA's data points with their sources renumbered into this post's source list, so sections can cite them."""
    if dna is None:
        return "(no company research is available)"
    number_of = {normalized_url(s.url): n for n, s in enumerate(sources, start=1)}
    lines = []
    for point in dna.data_points[:limit]:
        markers = ""
        for index in point.get("source_indexes", []):
            if isinstance(index, int) and 0 <= index < len(dna.sources):
                number = number_of.get(normalized_url(str(dna.sources[index].get("url", ""))))
                if number is not None:
                    markers += f"[{number}]"
        lines.append(f"- {point.get('name', '?')}: {str(point.get('value', ''))[:300]} {markers}".rstrip())
    return "\n".join(lines)


def fit_outline(outline: BlogOutline, target_words: int) -> BlogOutline:
    """Section targets scaled so that they add up to the post's target: models are poor at arithmetic."""
    total = outline.target_words
    if total <= 0:
        return outline
    factor = target_words / total
    sections = [
        s.model_copy(
            update={"target_words": max(SECTION_MIN_WORDS, min(SECTION_MAX_WORDS, round(s.target_words * factor)))}
        )
        for s in outline.sections
    ]
    return outline.model_copy(update={"sections": sections})


def check_outline(outline: BlogOutline) -> list[str]:
    headings = [s.heading.strip().casefold() for s in outline.sections]
    return ["section headings must be distinct"] if len(set(headings)) != len(headings) else []


def check_section(section: BlogSection, source_count: int) -> list[str]:
    """Every marker resolves to a source, one number per marker."""
    problems = section.check_against(source_count)
    grouped = GROUPED_CITATION.findall(section.body_markdown)
    if grouped:
        problems.append(f"write one number per citation marker, e.g. [1][3] instead of {grouped[0]}")
    return problems


def section_body(section: BlogSection, heading: str) -> str:
    """The body without a heading line the model repeated (the post adds the outline's heading itself)."""
    lines = section.body_markdown.strip().splitlines()
    if (
        lines
        and lines[0].lstrip().startswith("#")
        and lines[0].lstrip("# ").strip().casefold() == heading.strip().casefold()
    ):
        lines = lines[1:]
    return "\n".join(lines).strip()


def sections_to_expand(words: list[int], targets: list[int], total_target: int) -> list[int]:
    """Indexes of the shortest sections (relative to their own targets) whose expansion covers the shortfall."""
    shortfall = math.ceil(total_target * LENGTH_TOLERANCE) - sum(words)
    if shortfall <= 0:
        return []
    candidates = sorted((i for i in range(len(words)) if words[i] < targets[i]), key=lambda i: words[i] / targets[i])
    chosen: list[int] = []
    gain = 0
    for i in candidates:
        chosen.append(i)
        gain += targets[i] - words[i]
        if gain >= shortfall:
            break
    return sorted(chosen)


def renumber_citations(bodies: list[str], sources: list[Source]) -> tuple[list[str], list[Source]]:
    """Only the cited sources, numbered 1..n in order of first citation, with every marker rewritten to match."""
    new_number: dict[int, int] = {}
    for body in bodies:
        for match in CITATION.finditer(body):
            number = int(match.group(1))
            if 1 <= number <= len(sources) and number not in new_number:
                new_number[number] = len(new_number) + 1

    def rewrite(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return f"[{new_number[number]}]" if number in new_number else match.group(0)

    cited = [sources[old - 1] for old, _ in sorted(new_number.items(), key=lambda item: item[1])]
    return [CITATION.sub(rewrite, body) for body in bodies], cited


def assemble_markdown(title: str, sections: list[tuple[str, str]], sources: list[Source]) -> str:
    parts = [f"# {title.strip()}"]
    parts += [f"## {heading.strip()}\n\n{body.strip()}" for heading, body in sections]
    if sources:
        listed = "\n".join(
            f"- [{n}] [{(s.title or urlsplit(s.url).netloc).strip()}]({s.url})" for n, s in enumerate(sources, start=1)
        )
        parts.append(f"## Sources\n\n{listed}")
    return "\n\n".join(parts) + "\n"


def slugify(text: str, limit: int = 120) -> str:
    return _SLUG_PART.sub("-", text.lower()).strip("-")[:limit].strip("-") or "post"


def free_slug(wanted: str, taken: set[str]) -> str:
    """`wanted`, or `wanted-2`, `wanted-3`... whichever the company has not used yet."""
    if wanted not in taken:
        return wanted
    n = 2
    while f"{wanted}-{n}" in taken:
        n += 1
    return f"{wanted}-{n}"


def clean_keywords(keywords: list[str]) -> list[str]:
    return list(dict.fromkeys(k.strip().lower() for k in keywords if k.strip()))


async def gather_or_cancel(coroutines: Iterable[Awaitable[T]]) -> list[T]:
    """asyncio.gather that cancels the siblings when one fails: no paid calls keep running for a failed stage.

    Not a TaskGroup, because its ExceptionGroup would hide the AIProviderError that execute_stage turns into
    a retry or a FAILED job.
    """
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# ---- the stage ----------------------------------------------------------------------------------------------


@dataclass
class BlogRequest:
    topic: Topic
    persona: Persona | None
    post: BlogPost | None  # set: a revision of this post
    previous: BlogPostRevision | None
    target_words: int
    feedback: str


class BlogResearch(BaseModel):
    """The research step as saved: the provider's findings and the post's numbered sources, which the saved
    sections cite by number (kept, so that a new DNA version between attempts cannot renumber them)."""

    research: ResearchResult
    sources: list[Source]


@dataclass
class WrittenSection:
    plan: OutlineSection
    body: str

    @property
    def words(self) -> int:
        return count_words(self.body)


class BlogStage:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="generate_blogpost")
    async def generate_blogpost(self, stage: StageInput) -> StageResult:
        return await execute_stage(self.deps, stage, JobType.GENERATE_BLOGPOST, self._blogpost, BLOG_PARAM_PROBLEMS)

    async def _read_request(self, run: StageRun) -> BlogRequest:
        job = run.job
        params = run.params_as(BlogPostParams)
        async with self.deps.db.session() as session:
            post: BlogPost | None = None
            previous: BlogPostRevision | None = None
            if job.blog_post_id is not None:
                post = await session.get(BlogPost, job.blog_post_id)
                if post is None or post.company_id != run.company.id or post.tenant_id != job.tenant_id:
                    await fail_job(run, f"blog post {job.blog_post_id} does not exist for this company")
                previous = (
                    await session.exec(
                        select(BlogPostRevision).where(
                            col(BlogPostRevision.blog_post_id) == post.id,
                            col(BlogPostRevision.revision) == post.current_revision,
                        )
                    )
                ).first()
                if job.topic_id is not None and job.topic_id != post.topic_id:
                    await fail_job(run, "the job's topic is not the topic of the blog post it revises", INVALID_INPUT)
            topic_id = job.topic_id or (post.topic_id if post is not None else None)
            if topic_id is None:
                await fail_job(run, "the job names no topic to write about")
            topic = await session.get(Topic, topic_id)
            if topic is None or topic.company_id != run.company.id or topic.tenant_id != job.tenant_id:
                await fail_job(run, f"topic {topic_id} does not exist for this company")
            persona = await session.get(Persona, topic.persona_id)
        # No target (0, rows of old): as long as the post it revises, else the default length.
        target_words = clamp_target_words(
            params.target_words or None, post.target_words if post and post.target_words else DEFAULT_TARGET_WORDS
        )
        feedback = (params.feedback or "").strip()
        return BlogRequest(topic, persona, post, previous, target_words, feedback)

    async def _blogpost(self, run: StageRun) -> tuple[ArtifactWriter, dict[str, Any]]:
        router = self.deps.router
        await run.progress(5, "reading the topic")
        request = await self._read_request(run)
        # Each paid call is a step saved as soon as it succeeded: a retry resumes at the first unfinished one.
        steps = JobSteps(self.deps.db, run.job, run.saved_steps)
        await steps.load()
        topic = request.topic
        target = request.target_words
        dna = await latest_dna(run)
        context = company_context(run)
        topic_values: dict[str, Any] = {
            **context,
            "topic_title": topic.title,
            "topic_angle": topic.angle,
            "topic_keywords": ", ".join(topic.keywords),
            "persona": persona_profile(request.persona) if request.persona else "(no persona recorded)",
        }
        sample = {**context, "topic_title": topic.title}

        async def research_topic() -> BlogResearch:
            found = await router.research(render("blog_research", **topic_values), sample_context=sample)
            # Research first: its sources are about this topic; the DNA's back up what it says of the company.
            sources = merge_sources(found.sources, dna.sources if dna is not None else [])
            return BlogResearch(research=found, sources=sources)

        if steps.has("research"):
            await run.progress(10, "resuming: the research was done by an earlier attempt")
        else:
            await run.progress(10, f"researching {topic.title!r}")
        researched = await steps.once("research", BlogResearch, research_topic)
        research, sources = researched.research, researched.sources
        source_count = len(sources)
        shared: dict[str, Any] = {
            **topic_values,
            "dna_summary": dna.summary if dna is not None else "(no company research is available)",
            "company_facts": dna_facts_with_sources(dna, sources),
            "research": research.text[:RESEARCH_PROMPT_CHARS],
            "sources": numbered_sources(sources),
            "source_count": source_count,
            "feedback_block": render("blog_feedback", feedback=request.feedback) if request.feedback else "",
        }

        if steps.has("outline"):
            await run.progress(25, "resuming: the outline was written by an earlier attempt")
        else:
            await run.progress(25, f"outlining about {target} words from {source_count} sources")
        outline_prompt = render(
            "blog_outline",
            **shared,
            target_words=target,
            pages=round(target / PAGE_WORDS, 1),
            previous_block=self._previous_block(request),
        )
        outline = await steps.once(
            "outline",
            BlogOutline,
            lambda: router.generate_json(
                outline_prompt,
                BlogOutline,
                sample_context={**sample, "target_words": target},
                validate=check_outline,
            ),
        )
        outline = fit_outline(outline, target)
        section_list = "\n".join(f"{n}. {s.heading}" for n, s in enumerate(outline.sections, start=1))
        total = len(outline.sections)

        def section_context(plan: OutlineSection) -> dict[str, Any]:
            words = plan.target_words
            return {**sample, "section_heading": plan.heading, "words": words, "source_count": source_count}

        slots: list[WrittenSection | None] = []
        for index, plan in enumerate(outline.sections):
            saved = steps.result(f"section:{index}", BlogSection)
            slots.append(None if saved is None else WrittenSection(plan, section_body(saved, plan.heading)))
        missing = [index for index, section in enumerate(slots) if section is None]
        done = total - len(missing)

        async def section_step(step: str, prompt: str, plan: OutlineSection) -> BlogSection:
            """One section (written or expanded) as a saved step: paid for once, whatever the retries."""
            return await steps.once(
                step,
                BlogSection,
                lambda: router.generate_json(
                    prompt,
                    BlogSection,
                    sample_context=section_context(plan),
                    validate=lambda s: check_section(s, source_count),
                ),
            )

        async def write_section(index: int) -> WrittenSection:
            nonlocal done
            plan = outline.sections[index]
            prompt = render(
                "blog_section",
                **shared,
                title=outline.title,
                outline=section_list,
                number=index + 1,
                total=total,
                heading=plan.heading,
                key_points="\n".join(f"- {p}" for p in plan.key_points),
                words=plan.target_words,
            )
            section = await section_step(f"section:{index}", prompt, plan)
            done += 1
            await run.progress(30 + 50 * done // total, f"wrote section {done} of {total}: {plan.heading}")
            return WrittenSection(plan, section_body(section, plan.heading))

        if done:
            await run.progress(30, f"resuming: {done} of {total} sections were written by an earlier attempt")
        else:
            await run.progress(30, f"writing {total} sections")
        calls = [functools.partial(write_section, index) for index in missing]
        for index, section in zip(missing, await gather_draining(calls, SECTION_CONCURRENCY), strict=True):
            slots[index] = section
        written = [section for section in slots if section is not None]

        expand = sections_to_expand([w.words for w in written], [w.plan.target_words for w in written], target)
        if expand:
            # One round only: a model that stays short after being asked twice will not be talked into length.
            expanded = steps.count([f"expand:{index}" for index in expand])
            resuming = f"; {expanded} were expanded by an earlier attempt" if expanded else ""
            short = f"{sum(w.words for w in written)} of {target} words; expanding {len(expand)} short sections"
            await run.progress(82, short + resuming)

            async def expand_section(index: int) -> WrittenSection:
                current = written[index]
                prompt = render(
                    "blog_section_expand",
                    **shared,
                    title=outline.title,
                    outline=section_list,
                    heading=current.plan.heading,
                    key_points="\n".join(f"- {p}" for p in current.plan.key_points),
                    words=current.words,
                    target_words=current.plan.target_words,
                    body=current.body,
                )
                section = await section_step(f"expand:{index}", prompt, current.plan)
                longer = WrittenSection(current.plan, section_body(section, current.plan.heading))
                return longer if longer.words > current.words else current

            calls = [functools.partial(expand_section, index) for index in expand]
            for index, section in zip(expand, await gather_draining(calls, SECTION_CONCURRENCY), strict=True):
                written[index] = section

        bodies, cited = renumber_citations([w.body for w in written], sources)
        markdown = assemble_markdown(
            outline.title, [(w.plan.heading, body) for w, body in zip(written, bodies, strict=True)], cited
        )
        # The prose the outline planned; the title, headings and source list are not pages of reading.
        words = sum(count_words(body) for body in bodies)
        if words < target * LENGTH_TOLERANCE:
            activity.logger.warning(
                "job %s: blog post has %s words, short of its %s-word target", run.job.id, words, target
            )
        await run.progress(90, f"{words} words ({words / PAGE_WORDS:.1f} pages), {len(cited)} sources cited")
        citations = [{"number": n, "url": s.url, "title": s.title} for n, s in enumerate(cited, start=1)]
        keywords = clean_keywords(outline.keywords)
        # Sample content says so even when the offline provider served only an earlier attempt's steps.
        is_sample = run.used_offline_provider() or OFFLINE_PROVIDER in steps.providers
        job = run.job
        post_id = request.post.id if request.post is not None else None
        # Filled by the writer: the revision number is only known inside its transaction.
        summary: dict[str, Any] = {}

        async def write(session: AsyncSession) -> list[uuid.UUID]:
            # The steps are done with once the post is stored: they go in the transaction that stores it.
            run.recovered_usage.extend(await steps.clear(session))
            # A retried attempt finds the revision of the attempt that stored it instead of adding another.
            stored = (
                await session.exec(select(BlogPostRevision).where(col(BlogPostRevision.job_id) == job.id))
            ).first()
            if stored is not None:
                post = (await session.exec(select(BlogPost).where(col(BlogPost.id) == stored.blog_post_id))).one()
                summary.update(self._summary(post, stored, is_sample))
                return [post.id]
            now = datetime.now(UTC)
            if post_id is not None:
                # Lock the post: two revisions of one post must not both become revision n + 1.
                post = (await session.exec(select(BlogPost).where(col(BlogPost.id) == post_id).with_for_update())).one()
                revision_number = post.current_revision + 1
            else:
                post = BlogPost(
                    tenant_id=job.tenant_id, company_id=run.company.id, topic_id=topic.id, title="", slug=""
                )
                revision_number = 1
            taken = set(
                (
                    await session.exec(
                        select(BlogPost.slug).where(
                            col(BlogPost.company_id) == run.company.id, col(BlogPost.id) != post.id
                        )
                    )
                ).all()
            )
            post.title = outline.title.strip()
            post.slug = free_slug(slugify(outline.slug), taken)
            post.meta_description = outline.meta_description.strip()
            post.keywords = keywords
            post.target_words = target
            post.current_revision = revision_number
            post.status = BlogPostStatus.DRAFT.value
            post.is_sample = is_sample
            post.updated_at = now
            session.add(post)
            await session.flush()
            revision = BlogPostRevision(
                tenant_id=job.tenant_id,
                blog_post_id=post.id,
                job_id=job.id,
                revision=revision_number,
                markdown=markdown,
                word_count=words,
                citations=citations,
                feedback=request.feedback or None,
            )
            session.add(revision)
            await session.flush()
            summary.update(self._summary(post, revision, is_sample))
            return [post.id]

        return write, summary

    @staticmethod
    def _previous_block(request: BlogRequest) -> str:
        """For a revision: the version the supervisor reviewed, so the new one changes what was asked and keeps
        the rest."""
        if request.post is None or request.previous is None:
            return ""
        text = request.previous.markdown
        if len(text) > PREVIOUS_PROMPT_CHARS:
            text = text[:PREVIOUS_PROMPT_CHARS].rstrip() + "\n...(truncated)"
        return render("blog_previous", revision=request.previous.revision, markdown=text)

    @staticmethod
    def _summary(post: BlogPost, revision: BlogPostRevision, is_sample: bool) -> dict[str, Any]:
        return {
            "blogPostId": str(post.id),
            "title": post.title,
            "words": revision.word_count,
            "pages": round(revision.word_count / PAGE_WORDS, 1),
            "revision": revision.revision,
            "sources": len(revision.citations),
            "sample": is_sample,
        }
