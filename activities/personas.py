"""Six buyer personas from the company's latest DNA; also the DNA and persona context the later content stages share."""

import uuid
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.deps import StageDeps
from activities.jobs import ArtifactWriter, StageRun, execute_stage, fail_job
from activities.prompts import render
from models.contracts import StageInput, StageResult
from models.enums import JobType
from models.generation import PersonaSet
from models.job_params import BlogPostParams, PersonasParams, TopicsParams
from models.tables import CompanyDNA, Persona

PERSONA_COUNT = 6
# Enough of the DNA for a prompt to be grounded in it without sending every research note again.
PROMPT_DATA_POINTS = 60
PROMPT_VALUE_CHARS = 300


async def latest_dna(run: StageRun) -> CompanyDNA | None:
    """The company's newest DNA version (each research run adds one)."""
    async with run.deps.db.session() as session:
        statement = (
            select(CompanyDNA)
            .where(col(CompanyDNA.company_id) == run.company.id, col(CompanyDNA.tenant_id) == run.job.tenant_id)
            .order_by(col(CompanyDNA.version).desc())
            .limit(1)
        )
        return (await session.exec(statement)).first()


def content_language(run: StageRun) -> str:
    """The job's language when it was started with one, else the company's."""
    params = run.params
    language = params.language if isinstance(params, PersonasParams | TopicsParams | BlogPostParams) else None
    return language or run.company.language or "en"


def dna_facts(dna: CompanyDNA | None, limit: int = PROMPT_DATA_POINTS) -> str:
    """The DNA's data points as prompt lines: '- Name (category): value'."""
    if dna is None:
        return "(no company research is available yet)"
    lines = []
    for point in dna.data_points[:limit]:
        value = str(point.get("value", "")).strip()
        if len(value) > PROMPT_VALUE_CHARS:
            value = value[: PROMPT_VALUE_CHARS - 3].rstrip() + "..."
        lines.append(f"- {point.get('name', '?')} ({point.get('category', 'company')}): {value}")
    return "\n".join(lines)


def company_context(run: StageRun) -> dict[str, Any]:
    """The company fields every content prompt starts from; also the offline provider's sample context."""
    company = run.company
    return {
        "company_name": company.name,
        "website": company.website or "(none given)",
        "industry": company.industry or "(not given)",
        "country": company.country or "(not given)",
        "language": content_language(run),
    }


def persona_profile(persona: Persona) -> str:
    """A persona as a prompt block: name, role and the stored details."""
    details = persona.details or {}
    lines = [f"Name: {persona.name}", f"Role: {persona.role}"]
    if details.get("summary"):
        lines.append(f"Who they are: {details['summary']}")
    for key, label in (
        ("goals", "Goals"),
        ("pain_points", "Pain points"),
        ("channels", "Channels"),
        ("content_preferences", "Content preferences"),
    ):
        values = details.get(key) or []
        if values:
            lines.append(f"{label}: " + "; ".join(str(v) for v in values))
    if details.get("company_size"):
        lines.append(f"Typical employer size: {details['company_size']}")
    return "\n".join(lines)


class PersonaStage:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="generate_personas")
    async def generate_personas(self, stage: StageInput) -> StageResult:
        return await execute_stage(self.deps, stage, JobType.GENERATE_PERSONAS, self._personas)

    async def _personas(self, run: StageRun) -> tuple[ArtifactWriter, dict[str, Any]]:
        await run.progress(5, "reading the company DNA")
        dna = await latest_dna(run)
        if dna is None:
            await fail_job(run, "research the company DNA first")
        context = company_context(run)
        dna_version = dna.version

        await run.progress(15, f"writing {PERSONA_COUNT} personas for {run.company.name}")
        personas = await self.deps.router.generate_json(
            render(
                "personas",
                **context,
                count=PERSONA_COUNT,
                dna_summary=dna.summary,
                data_points=dna_facts(dna),
            ),
            PersonaSet,
            sample_context=context,
        )
        await run.progress(85, f"{len(personas.personas)} personas written")
        is_sample = run.used_offline_provider()
        # Filled by the writer from the rows it stores or finds, so ids and names always match the artifacts.
        summary: dict[str, Any] = {"personas": [], "sample": is_sample}

        async def write(session: AsyncSession) -> list[uuid.UUID]:
            # A retried attempt finds the rows of the attempt that stored them instead of adding six more.
            rows = list(
                (
                    await session.exec(
                        select(Persona).where(col(Persona.job_id) == run.job.id).order_by(col(Persona.position))
                    )
                ).all()
            )
            if not rows:
                rows = [
                    Persona(
                        tenant_id=run.job.tenant_id,
                        company_id=run.company.id,
                        job_id=run.job.id,
                        position=position,
                        name=persona.name.strip(),
                        role=persona.role.strip(),
                        details={
                            **persona.model_dump(mode="json", exclude={"name", "role"}),
                            "dna_version": dna_version,
                        },
                        is_sample=is_sample,
                    )
                    for position, persona in enumerate(personas.personas)
                ]
                session.add_all(rows)
                await session.flush()
            summary["personas"] = [{"id": str(row.id), "name": row.name, "role": row.role} for row in rows]
            return [row.id for row in rows]

        return write, summary
