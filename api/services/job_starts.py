"""Starting a generation job: its inputs checked against the company, its AIJob row written (PENDING) with the
Idempotency-Key and the rate limit, and its workflow started, without waiting for any AI work."""

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import SearchAttributePair

from api.deps import JobStoreDep, SessionDep, SettingsDep, TemporalDep
from api.errors import Problem
from api.routes.companies import OwnCompanyDep
from api.services.starts import StartGuard, StartGuardDep
from models.api import JobAccepted
from models.contracts import JobRequest
from models.enums import JobStatus, JobType, Tier
from models.job_params import AnyJobParams
from models.names import JOB_TYPE
from models.settings import Settings
from models.stores.jobs import JobStore
from models.tables import AIJob, Company, CompanyDNA
from workflows.job import GenerationJobWorkflow
from workflows.policies import job_workflow_id


def invalid_reference(field: str, what: str) -> Problem:
    """A body id that names nothing of this company (missing, or another tenant's: the same answer)."""
    return Problem(
        422,
        f"{field} does not name {what} of this company",
        errors=[{"field": field, "message": f"no such {what} in this company", "type": "not_found"}],
    )


@dataclass(frozen=True)
class StartedJob:
    """What a job's workflow is started with."""

    id: uuid.UUID
    job_type: JobType
    tenant_id: uuid.UUID
    company_id: uuid.UUID


@dataclass
class JobStarter:
    """Everything a start endpoint needs: checks of its input against the company, and the start itself."""

    company: Company
    session: AsyncSession
    temporal: Client
    settings: Settings
    guard: StartGuard
    store: JobStore

    def needs(self, tier: Tier, what: str) -> None:
        if not self.guard.principal.tier.includes(tier):
            raise Problem(
                403,
                f"{what} needs the {tier.value} tier or higher; this tenant is on {self.guard.principal.tier.value}",
            )

    async def owned(self, table: Any, object_id: uuid.UUID, field: str, what: str) -> Any:
        """The company's row of `table` that a body field names; 422 when it names nothing of this company."""
        row = await self.session.get(table, object_id)
        if row is None or row.company_id != self.company.id or row.tenant_id != self.company.tenant_id:
            raise invalid_reference(field, what)
        return row

    async def require_dna(self) -> None:
        statement = select(CompanyDNA.id).where(col(CompanyDNA.company_id) == self.company.id).limit(1)
        if (await self.session.exec(statement)).first() is None:
            raise Problem(
                409, f"research the company's DNA first: POST /api/v1/ai/companies/{self.company.id}/scrape-dna/"
            )

    async def start(
        self,
        params: AnyJobParams,
        *,
        persona_id: uuid.UUID | None = None,
        topic_id: uuid.UUID | None = None,
        blog_post_id: uuid.UUID | None = None,
        social_post_id: uuid.UUID | None = None,
    ) -> JobAccepted:
        """Writes the AIJob (PENDING) and starts its workflow, without waiting for any AI work; a repeated
        Idempotency-Key returns the first request's job (and starts its workflow if that request could not)."""
        session, guard = self.session, self.guard
        earlier = guard.replay_of
        if earlier is None:
            job = StartedJob(
                id=uuid.uuid4(),
                job_type=JobType(params.kind),
                tenant_id=guard.principal.tenant_id,
                company_id=self.company.id,
            )
            row = JobStore.new_row(
                job.id,
                tenant_id=job.tenant_id,
                company_id=job.company_id,
                job_type=job.job_type,
                params=params,
                workflow_id=job_workflow_id(job.id),
                persona_id=persona_id,
                topic_id=topic_id,
                blog_post_id=blog_post_id,
                social_post_id=social_post_id,
            )
            earlier = await guard.admit(session, job.id, row)
            if earlier is None:
                await session.commit()
                await self.launch(job)
                return JobAccepted(job_id=job.id)
        replayed = await session.get(AIJob, earlier)
        if replayed is None:  # the key outlived its job
            raise Problem(409, "the job of this Idempotency-Key no longer exists; use a new key")
        if replayed.status == JobStatus.PENDING:
            await self.launch(
                StartedJob(
                    id=replayed.id,
                    job_type=JobType(replayed.job_type),
                    tenant_id=replayed.tenant_id,
                    company_id=replayed.company_id,
                )
            )
        return JobAccepted(job_id=replayed.id)

    async def launch(self, job: StartedJob) -> None:
        async def refused() -> None:
            await self.store.refuse_start(job.id)

        request = JobRequest(
            job_id=job.id,
            job_type=job.job_type,
            tenant_id=job.tenant_id,
            company_id=job.company_id,
            tier=self.guard.principal.tier,
        )
        await self.guard.launch(
            self.session,
            self.temporal,
            GenerationJobWorkflow.run,
            request,
            workflow_id=job_workflow_id(job.id),
            company_id=job.company_id,
            attribute=SearchAttributePair(JOB_TYPE, job.job_type.value),
            refused=refused,
            what="job",
        )


async def job_starter(
    company: OwnCompanyDep,
    guard: StartGuardDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    store: JobStoreDep,
) -> JobStarter:
    """In this order: the company (404), the Idempotency-Key (422), then the engine (503); the body comes after."""
    return JobStarter(company=company, session=session, temporal=temporal, settings=settings, guard=guard, store=store)


StarterDep = Annotated[JobStarter, Depends(job_starter)]
