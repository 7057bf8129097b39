"""A month of blog topics for one persona, or one replacement for a topic the supervisor rejected."""

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.deps import StageDeps
from activities.jobs import INVALID_INPUT, ArtifactWriter, ParamProblems, StageRun, execute_stage, fail_job
from activities.personas import (
    company_context,
    dna_facts,
    latest_dna,
    persona_profile,
)
from activities.prompts import render
from models.contracts import StageInput, StageResult
from models.enums import JobType, TopicStatus
from models.generation import TopicIdea, TopicPlan
from models.job_params import TopicsParams
from models.tables import Persona, Topic

MAX_TOPICS_PER_PERSONA = 8
MAX_KEYWORDS = 12
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
TOPIC_PARAM_PROBLEMS: ParamProblems = {
    "count": lambda value: f"count must be a whole number, got {value!r}",
    "replaces_topic_id": lambda value: f"replaces_topic_id {value!r} is not a topic id",
}


@dataclass
class TopicRequest:
    """What the job asks for, read from its row: a plan of `count` topics, or one replacement."""

    persona: Persona
    month: str
    count: int
    rejected: Topic | None = None
    feedback: str = ""


def same_persona(idea: TopicIdea, persona: Persona) -> bool:
    return idea.persona_name.strip().casefold() == persona.name.strip().casefold()


def check_plan(plan: TopicPlan, persona: Persona, count: int, rejected_title: str | None = None) -> list[str]:
    """Problems a repair request can fix: topics for someone else, too few, repeated titles."""
    problems = [
        f"topics[{i}] is for {idea.persona_name!r}; every topic must be for {persona.name!r} (use that exact name)"
        for i, idea in enumerate(plan.topics)
        if not same_persona(idea, persona)
    ]
    if len(plan.topics) < count:
        problems.append(f"{len(plan.topics)} topics; exactly {count} are needed")
    titles = [idea.title.strip().casefold() for idea in plan.topics[:count]]
    if len(set(titles)) != len(titles):
        problems.append("topic titles must be distinct")
    if rejected_title is not None and rejected_title.strip().casefold() in titles:
        problems.append("the new topic repeats the rejected title; propose a different topic")
    return problems


def clean_keywords(keywords: list[str]) -> list[str]:
    """Lowercase, trimmed, without repeats, at most MAX_KEYWORDS: the shape the schema asks the model for."""
    cleaned = [k.strip().lower() for k in keywords if k.strip()]
    return list(dict.fromkeys(cleaned))[:MAX_KEYWORDS]


def planned_titles(topics: list[Topic]) -> str:
    return "\n".join(f"- {t.title}" for t in topics) or "(none yet)"


class TopicStage:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="generate_topics")
    async def generate_topics(self, stage: StageInput) -> StageResult:
        return await execute_stage(self.deps, stage, JobType.GENERATE_TOPICS, self._topics, TOPIC_PARAM_PROBLEMS)

    async def _read_request(self, run: StageRun) -> TopicRequest:
        job = run.job
        params = run.params_as(TopicsParams)
        async with self.deps.db.session() as session:
            rejected: Topic | None = None
            replaces = params.replaces_topic_id
            if replaces is not None:
                rejected = await session.get(Topic, replaces)
                if rejected is None or rejected.company_id != run.company.id or rejected.tenant_id != job.tenant_id:
                    await fail_job(run, f"the topic {replaces} to replace does not exist for this company")
            persona_id = job.persona_id or (rejected.persona_id if rejected is not None else None)
            if persona_id is None:
                await fail_job(run, "the job names no persona to plan topics for")
            if rejected is not None and persona_id != rejected.persona_id:
                await fail_job(run, "the job's persona is not the persona of the topic it replaces", INVALID_INPUT)
            persona = await session.get(Persona, persona_id)
        if persona is None or persona.company_id != run.company.id or persona.tenant_id != job.tenant_id:
            await fail_job(run, f"persona {persona_id} does not exist for this company")

        if rejected is not None:
            feedback = (params.feedback or "").strip()
            if not feedback:
                await fail_job(run, "a topic regeneration needs the supervisor's feedback")
            # The replacement belongs to the rejected topic's month, whatever else the job says.
            return TopicRequest(persona=persona, month=rejected.month, count=1, rejected=rejected, feedback=feedback)

        month = params.month.strip()
        if not month:
            await fail_job(run, "the job names no month (YYYY-MM) to plan topics for")
        if not _MONTH.match(month):
            await fail_job(run, f"month must look like YYYY-MM, got {month!r}", INVALID_INPUT)
        count = params.count
        if not 1 <= count <= MAX_TOPICS_PER_PERSONA:
            await fail_job(
                run, f"count must be 1 to {MAX_TOPICS_PER_PERSONA} topics per persona, got {count}", INVALID_INPUT
            )
        return TopicRequest(persona=persona, month=month, count=count)

    async def _topics(self, run: StageRun) -> tuple[ArtifactWriter, dict[str, Any]]:
        await run.progress(5, "reading the persona and the company DNA")
        request = await self._read_request(run)
        persona = request.persona
        dna = await latest_dna(run)
        if dna is None:
            await fail_job(run, "research the company DNA first")
        async with self.deps.db.session() as session:
            # Topics already planned for this persona and month: the new ones must not repeat them.
            planned = list(
                (
                    await session.exec(
                        select(Topic)
                        .where(col(Topic.persona_id) == persona.id, col(Topic.month) == request.month)
                        .order_by(col(Topic.created_at), col(Topic.position))
                    )
                ).all()
            )
        context = company_context(run)
        prompt_values: dict[str, Any] = {
            **context,
            "month": request.month,
            "persona_name": persona.name,
            "persona": persona_profile(persona),
            "dna_summary": dna.summary,
            "data_points": dna_facts(dna),
        }
        sample_context = {
            **context,
            "persona_names": [persona.name],
            "topics_per_persona": request.count,
            "month": request.month,
        }
        rejected = request.rejected

        if rejected is None:
            await run.progress(20, f"planning {request.count} topics for {persona.name} in {request.month}")
            prompt = render(
                "topics",
                **prompt_values,
                count=request.count,
                planned=planned_titles([t for t in planned if t.status != TopicStatus.REJECTED]),
            )
            rejected_title = None
        else:
            await run.progress(20, f"replacing the rejected topic {rejected.title!r} for {persona.name}")
            others = [t for t in planned if t.id != rejected.id and t.status != TopicStatus.REJECTED]
            prompt = render(
                "topic_regenerate",
                **prompt_values,
                rejected_title=rejected.title,
                rejected_angle=rejected.angle,
                rejected_keywords=", ".join(rejected.keywords),
                feedback=request.feedback,
                planned=planned_titles(others),
            )
            rejected_title = rejected.title
        count = request.count
        plan = await self.deps.router.generate_json(
            prompt,
            TopicPlan,
            sample_context=sample_context,
            validate=lambda p: check_plan(p, persona, count, rejected_title),
        )
        ideas = plan.topics[:count]
        await run.progress(85, f"{len(ideas)} topics for {persona.name}")
        is_sample = run.used_offline_provider()
        job = run.job
        # Filled by the writer from the rows it stores or finds, so ids always match the artifacts.
        summary: dict[str, Any] = {"topics": [], "sample": is_sample}

        async def write(session: AsyncSession) -> list[uuid.UUID]:
            # A retried attempt finds the rows of the attempt that stored them instead of planning twice.
            rows = list(
                (
                    await session.exec(select(Topic).where(col(Topic.job_id) == job.id).order_by(col(Topic.position)))
                ).all()
            )
            if not rows:
                rows = [
                    Topic(
                        tenant_id=job.tenant_id,
                        company_id=persona.company_id,
                        persona_id=persona.id,
                        job_id=job.id,
                        month=request.month,
                        # A replacement takes the rejected topic's place in the plan.
                        position=rejected.position if rejected is not None else position,
                        title=idea.title.strip(),
                        angle=idea.angle.strip(),
                        keywords=clean_keywords(idea.keywords),
                        status=TopicStatus.PROPOSED.value,
                        revision=rejected.revision + 1 if rejected is not None else 0,
                        previous_id=rejected.id if rejected is not None else None,
                        is_sample=is_sample,
                    )
                    for position, idea in enumerate(ideas)
                ]
                session.add_all(rows)
                await session.flush()
            summary["topics"] = [
                {"id": str(row.id), "title": row.title, "personaId": str(row.persona_id)} for row in rows
            ]
            return [row.id for row in rows]

        return write, summary
