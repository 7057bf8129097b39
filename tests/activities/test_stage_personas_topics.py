"""The personas and topics stages on a real database through the offline provider: six personas from the DNA,
topics per persona and month, a rejected topic's regeneration with the supervisor's feedback, and inputs
that end the job FAILED."""

import asyncio
import uuid
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from activities.personas import PersonaStage
from activities.topics import TopicStage, check_plan
from models.db import Database
from models.enums import JobStatus, JobType, TopicStatus
from models.generation import TopicIdea, TopicPlan
from models.job_params import PersonasParams, TopicsParams, params_of
from models.stores.jobs import JobStore
from models.tables import AIJob, Persona, Topic
from tests.support.stack import Tenant
from tests.support.stage_rows import (
    RecordingProvider,
    add_dna,
    add_persona,
    add_topic,
    job_row,
    new_company,
    new_job,
    pipeline_job_spec,
    reopen_job,
    rows,
    run_stage,
    stage_deps,
)

# ---- personas -----------------------------------------------------------------------------------------------


async def test_personas_are_six_distinct_rows_from_the_latest_dna(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company, version=1)
    await add_dna(db, company, version=2)
    job = await new_job(db, company, JobType.GENERATE_PERSONAS)
    provider = RecordingProvider()

    result = await run_stage(PersonaStage(stage_deps(db, provider)).generate_personas, job.id)

    personas = await rows(db, Persona, Persona.job_id == job.id, order=Persona.position)
    assert len(personas) == 6
    assert [p.position for p in personas] == list(range(6))
    assert len({p.name.lower() for p in personas}) == 6
    for persona in personas:
        assert persona.company_id == company.id and persona.tenant_id == tenant.id
        assert persona.role and persona.is_sample and not persona.selected
        assert persona.details["summary"] and len(persona.details["goals"]) >= 2
        assert persona.details["pain_points"] and persona.details["channels"]
        assert persona.details["dna_version"] == 2
        assert "name" not in persona.details and "role" not in persona.details
    assert result.artifact_ids == [p.id for p in personas]
    assert result.summary["personas"] == [{"id": str(p.id), "name": p.name, "role": p.role} for p in personas]
    # The prompt is grounded in the company's research.
    assert provider.sent(company.name) and provider.sent("Fact 31 (company): value 31")

    done = await job_row(db, job.id)
    assert done.status == JobStatus.COMPLETED and done.progress == 100
    assert done.result_data == result.to_result_data()
    assert done.provider == "offline" and done.input_tokens > 0


async def test_personas_are_written_once_per_job(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    job = await new_job(db, company, JobType.GENERATE_PERSONAS)
    stage = PersonaStage(stage_deps(db))

    first = await run_stage(stage.generate_personas, job.id)
    again = await run_stage(stage.generate_personas, job.id)
    assert again == first
    # A retry that finds the rows stored (its result lost) returns them and adds none.
    await reopen_job(db, job.id)
    retried = await run_stage(stage.generate_personas, job.id)
    assert retried.artifact_ids == first.artifact_ids
    assert retried.summary["personas"] == first.summary["personas"]
    assert len(await rows(db, Persona, Persona.company_id == company.id)) == 6


async def test_a_stage_given_its_spec_creates_its_row_once(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    spec = await pipeline_job_spec(db, company, JobType.GENERATE_PERSONAS, params=PersonasParams(language="de"))
    stage = PersonaStage(stage_deps(db))

    first = await run_stage(stage.generate_personas, spec.job_id, spec)
    again = await run_stage(stage.generate_personas, spec.job_id, spec)  # a retry, or the same attempt twice

    assert again == first
    [job] = await rows(db, AIJob, AIJob.pipeline_id == spec.pipeline_id)
    assert job.id == spec.job_id and job.status == JobStatus.COMPLETED and job.workflow_id == spec.workflow_id
    assert job.job_type == JobType.GENERATE_PERSONAS and job.tenant_id == tenant.id
    assert job.params == {"kind": "generate_personas", "language": "de"}
    assert len(await rows(db, Persona, Persona.job_id == spec.job_id)) == 6


async def test_a_job_row_is_created_once_by_concurrent_duplicates(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    spec = await pipeline_job_spec(db, company, JobType.GENERATE_TOPICS, params={"month": "2026-03", "count": 2})
    store = JobStore(db)

    made = await asyncio.gather(*(store.create(spec) for _ in range(4)))

    assert sorted(made) == [False, False, False, True]
    [job] = await rows(db, AIJob, AIJob.pipeline_id == spec.pipeline_id)
    assert job.status == JobStatus.PENDING and job.progress_message == "queued"
    assert params_of(JobType.GENERATE_TOPICS, job.params) == TopicsParams(month="2026-03", count=2)


async def test_a_spec_for_another_job_is_refused(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    spec = await pipeline_job_spec(db, company, JobType.GENERATE_PERSONAS, params=PersonasParams())

    with pytest.raises(ApplicationError) as failure:
        await run_stage(PersonaStage(stage_deps(db)).generate_personas, uuid.uuid4(), spec)

    assert failure.value.type == "WrongJobType" and failure.value.non_retryable
    assert await rows(db, AIJob, AIJob.pipeline_id == spec.pipeline_id) == []


async def test_personas_without_dna_fail_the_job(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    job = await new_job(db, company, JobType.GENERATE_PERSONAS)

    with pytest.raises(ApplicationError) as failure:
        await run_stage(PersonaStage(stage_deps(db)).generate_personas, job.id)

    assert failure.value.type == "MissingInput" and failure.value.non_retryable
    assert "research the company DNA first" in str(failure.value)
    ended = await job_row(db, job.id)
    assert ended.status == JobStatus.FAILED and ended.error_message == "research the company DNA first"
    assert ended.completed_at is not None
    assert await rows(db, Persona, Persona.job_id == job.id) == []


# ---- topics -------------------------------------------------------------------------------------------------


async def test_topics_for_one_persona_and_month(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant, language="de")
    await add_dna(db, company)
    persona = await add_persona(db, company)
    job = await new_job(
        db, company, JobType.GENERATE_TOPICS, persona_id=persona.id, params={"month": "2026-03", "count": 3}
    )
    provider = RecordingProvider()

    result = await run_stage(TopicStage(stage_deps(db, provider)).generate_topics, job.id)

    topics = await rows(db, Topic, Topic.job_id == job.id, order=Topic.position)
    assert len(topics) == 3
    for position, topic in enumerate(topics):
        assert topic.persona_id == persona.id and topic.company_id == company.id
        assert topic.month == "2026-03" and topic.position == position
        assert topic.title and len(topic.angle) >= 10 and topic.keywords
        assert all(k == k.lower() for k in topic.keywords)
        assert topic.status == TopicStatus.PROPOSED and topic.revision == 0 and topic.previous_id is None
        assert topic.is_sample
    assert result.artifact_ids == [t.id for t in topics]
    assert result.summary["topics"] == [
        {"id": str(t.id), "title": t.title, "personaId": str(persona.id)} for t in topics
    ]
    (prompt,) = provider.sent("Plan the blog topics")
    assert "Operations Olivia" in prompt and "2026-03" in prompt and "in de" in prompt
    assert "Runs a 40-person plant" in prompt  # the persona's profile, not only its name

    # Topics for the same persona and month later: the plan already made is named so that it is not repeated.
    second = await new_job(db, company, JobType.GENERATE_TOPICS, persona_id=persona.id, params={"month": "2026-03"})
    again = await run_stage(TopicStage(stage_deps(db, provider)).generate_topics, second.id)
    assert len(again.artifact_ids) == 2  # the default count
    later = provider.sent("Plan the blog topics")[-1]
    assert all(f"- {t.title}" in later for t in topics)

    await reopen_job(db, second.id)
    assert (await run_stage(TopicStage(stage_deps(db)).generate_topics, second.id)).artifact_ids == again.artifact_ids
    assert len(await rows(db, Topic, Topic.persona_id == persona.id)) == 5


def test_a_plan_must_be_for_the_persona_and_long_enough() -> None:
    persona = Persona(tenant_id=uuid.uuid4(), company_id=uuid.uuid4(), name="Operations Olivia", role="Ops")

    def idea(title: str, name: str = "operations olivia ") -> TopicIdea:
        return TopicIdea(title=title, angle="a specific angle here", keywords=["x"], persona_name=name)

    assert check_plan(TopicPlan(topics=[idea("First topic"), idea("Second topic"), idea("Third")]), persona, 2) == []
    problems = check_plan(TopicPlan(topics=[idea("First topic", "Founder Felix")]), persona, 2)
    assert "is for 'Founder Felix'" in problems[0] and "1 topics; exactly 2" in problems[1]
    assert check_plan(TopicPlan(topics=[idea("Same title"), idea("same title")]), persona, 2) == [
        "topic titles must be distinct"
    ]
    assert "repeats the rejected title" in check_plan(TopicPlan(topics=[idea("Old title")]), persona, 1, "Old Title")[0]


async def test_a_rejected_topic_is_regenerated_with_the_feedback(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    persona = await add_persona(db, company)
    rejected = await add_topic(db, persona, position=3, status=TopicStatus.REJECTED.value, feedback="too generic")
    sibling = await add_topic(db, persona, title="Shift handover checklists that stick")
    feedback = "Too generic. Focus on plants with under 50 staff and give one real example with numbers."
    job = await new_job(
        db,
        company,
        JobType.GENERATE_TOPICS,
        persona_id=persona.id,
        params={"replaces_topic_id": str(rejected.id), "feedback": feedback, "count": 4},
    )
    provider = RecordingProvider()

    result = await run_stage(TopicStage(stage_deps(db, provider)).generate_topics, job.id)

    (prompt,) = provider.sent("rejected one of the blog topics")
    assert feedback in prompt
    assert rejected.title in prompt and rejected.angle in prompt
    assert f"- {sibling.title}" in prompt
    (replacement,) = await rows(db, Topic, Topic.job_id == job.id)
    assert result.artifact_ids == [replacement.id]
    assert replacement.revision == 1 and replacement.previous_id == rejected.id
    assert replacement.persona_id == persona.id and replacement.month == rejected.month
    assert replacement.position == 3 and replacement.status == TopicStatus.PROPOSED
    assert replacement.title != rejected.title

    # Rejected again: the next one counts on from the replacement.
    again = await new_job(
        db,
        company,
        JobType.GENERATE_TOPICS,
        persona_id=persona.id,
        params={"replaces_topic_id": str(replacement.id), "feedback": "Still too broad."},
    )
    await run_stage(TopicStage(stage_deps(db)).generate_topics, again.id)
    (third,) = await rows(db, Topic, Topic.job_id == again.id)
    assert third.revision == 2 and third.previous_id == replacement.id


@pytest.mark.parametrize(
    ("params", "error_type", "message"),
    [
        ({}, "MissingInput", "the job names no month (YYYY-MM) to plan topics for"),
        ({"month": "March"}, "InvalidInput", "month must look like YYYY-MM, got 'March'"),
        ({"month": "2026-13"}, "InvalidInput", "month must look like YYYY-MM, got '2026-13'"),
        ({"month": "2026-03", "count": 0}, "InvalidInput", "count must be 1 to 8 topics per persona, got 0"),
        ({"month": "2026-03", "count": "many"}, "InvalidInput", "count must be a whole number, got 'many'"),
        ({"replaces_topic_id": "nope", "feedback": "x"}, "InvalidInput", "replaces_topic_id 'nope' is not a topic id"),
        ({"replaces_topic_id": "{topic}"}, "MissingInput", "a topic regeneration needs the supervisor's feedback"),
    ],
)
async def test_topic_inputs_that_fail_the_job(
    db: Database, tenant: Tenant, params: dict[str, Any], error_type: str, message: str
) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    persona = await add_persona(db, company)
    topic = await add_topic(db, persona)
    params = {k: v.format(topic=topic.id) if isinstance(v, str) else v for k, v in params.items()}
    job = await new_job(db, company, JobType.GENERATE_TOPICS, persona_id=persona.id, params=params)

    with pytest.raises(ApplicationError) as failure:
        await run_stage(TopicStage(stage_deps(db)).generate_topics, job.id)

    assert failure.value.type == error_type and failure.value.non_retryable
    ended = await job_row(db, job.id)
    assert ended.status == JobStatus.FAILED and ended.error_message == message


async def test_topics_need_a_persona_of_the_same_company(db: Database, tenant: Tenant) -> None:
    company = await new_company(db, tenant)
    await add_dna(db, company)
    no_persona = await new_job(db, company, JobType.GENERATE_TOPICS, params={"month": "2026-03"})
    with pytest.raises(ApplicationError, match="names no persona"):
        await run_stage(TopicStage(stage_deps(db)).generate_topics, no_persona.id)
    assert (await job_row(db, no_persona.id)).status == JobStatus.FAILED

    elsewhere = await add_persona(db, await new_company(db, tenant, name="Other Co"))
    foreign = await new_job(db, company, JobType.GENERATE_TOPICS, persona_id=elsewhere.id, params={"month": "2026-03"})
    with pytest.raises(ApplicationError, match="does not exist for this company") as failure:
        await run_stage(TopicStage(stage_deps(db)).generate_topics, foreign.id)
    assert failure.value.type == "MissingInput"
    assert await rows(db, Topic, Topic.persona_id == elsewhere.id) == []
