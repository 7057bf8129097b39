"""Company search and DNA research: sourced findings, then 30+ named data points tied to those sources."""

import uuid
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity

from activities.deps import StageDeps
from activities.jobs import OFFLINE_PROVIDER, ArtifactWriter, StageRun, execute_stage
from activities.prompts import render
from activities.steps import JobSteps
from models.contracts import StageInput, StageResult
from models.enums import JobType
from models.generation import CompanyDNAExtraction, ResearchResult
from models.tables import Company, CompanyDNA

MIN_DATA_POINTS = 30


def numbered_sources(research: ResearchResult) -> str:
    return "\n".join(f"[{n}] {s.title or 'untitled'} - {s.url}" for n, s in enumerate(research.sources, start=1))


class DnaStage:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name="generate_dna")
    async def generate_dna(self, stage: StageInput) -> StageResult:
        return await execute_stage(self.deps, stage, JobType.GENERATE_DNA, self._research)

    async def _research(self, run: StageRun) -> tuple[ArtifactWriter, dict[str, Any]]:
        company = run.company
        context = {
            "company_name": company.name,
            "website": company.website,
            "industry": company.industry,
            "country": company.country,
            "language": company.language,
        }
        # Research and extraction are paid separately: a retry after a failed extraction keeps the research.
        steps = JobSteps(self.deps.db, run.job, run.saved_steps)
        await steps.load()
        router = self.deps.router
        if steps.has("research"):
            await run.progress(10, "resuming: the research was done by an earlier attempt")
        else:
            await run.progress(10, f"researching {company.name} on the web")
        prompt = render("dna_research", **context)
        research = await steps.once("research", ResearchResult, lambda: router.research(prompt, sample_context=context))
        if not research.sources:
            await run.progress(35, "research returned no sources; asking again for cited findings")
            cited = prompt + "\nEvery statement must cite a URL."
            research = await steps.once(
                "research_cited", ResearchResult, lambda: router.research(cited, sample_context=context)
            )
        await run.progress(40, f"research found {len(research.sources)} sources; extracting data points")

        source_count = len(research.sources)
        extract_prompt = render(
            "dna_extract",
            **context,
            research=research.text,
            sources=numbered_sources(research),
            min_points=MIN_DATA_POINTS,
        )
        dna = await steps.once(
            "extraction",
            CompanyDNAExtraction,
            lambda: router.generate_json(
                extract_prompt,
                CompanyDNAExtraction,
                sample_context={**context, "source_count": source_count},
                validate=lambda extraction: extraction.check_against(source_count),
            ),
        )
        await run.progress(85, f"{len(dna.data_points)} data points from {source_count} sources")
        is_sample = run.used_offline_provider() or OFFLINE_PROVIDER in steps.providers

        async def write(session: AsyncSession) -> list[uuid.UUID]:
            # The steps are done with once the DNA is stored: they go in the transaction that stores it.
            run.recovered_usage.extend(await steps.clear(session))
            # One DNA row per job (unique job_id): a retried activity finds it instead of adding a version.
            existing = (await session.exec(select(CompanyDNA).where(col(CompanyDNA.job_id) == run.job.id))).first()
            if existing is not None:
                return [existing.id]
            # Versions count up per company: lock the company row so concurrent DNA jobs queue here.
            await session.exec(select(Company).where(col(Company.id) == company.id).with_for_update())
            latest = select(sa.func.coalesce(sa.func.max(CompanyDNA.version), 0)).where(
                col(CompanyDNA.company_id) == company.id
            )
            version = int((await session.exec(latest)).one()) + 1
            row = CompanyDNA(
                tenant_id=company.tenant_id,
                company_id=company.id,
                job_id=run.job.id,
                version=version,
                summary=dna.summary,
                data_points=[p.to_stored() for p in dna.data_points],
                sources=[s.model_dump() for s in research.sources],
                is_sample=is_sample,
            )
            session.add(row)
            await session.flush()
            return [row.id]

        summary = {
            "dataPoints": len(dna.data_points),
            "sources": source_count,
            "sample": is_sample,
            "preview": [{"name": p.name, "value": p.value[:200]} for p in dna.data_points[:5]],
        }
        return write, summary
