"""A company's job statistics: counts by status and type, durations, tokens and cost."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import sqlalchemy as sa
from fastapi import Query
from pydantic import BeforeValidator
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from api.routes.companies import company_of_tenant
from models.enums import JobStatus, JobType
from models.job_requests import Durations, JobStats, JobTypeStats, UsageTotals
from models.tables import AIJob


def iso_only(value: object) -> object:
    """pydantic would read a bare number as unix time; the parameter is documented as an ISO 8601 date-time."""
    if (
        isinstance(value, str)
        and value.strip().lstrip("+-").replace(".", "", 1).replace("e", "", 1).replace("E", "", 1).isdigit()
    ):
        raise ValueError("use an ISO 8601 date-time such as 2026-11-01T00:00:00Z")
    return value


SinceQuery = Annotated[
    datetime | None,
    BeforeValidator(iso_only),
    Query(description="only jobs created at or after this time (ISO 8601)"),
]


def empty_stats() -> JobStats:
    """Every status and every job type, at zero."""
    return JobStats(
        total=0,
        by_status=dict.fromkeys(JobStatus, 0),
        by_type={
            t: JobTypeStats(by_status=dict.fromkeys(JobStatus, 0), durations=Durations(), usage=UsageTotals())
            for t in JobType
        },
        usage=UsageTotals(),
    )


async def job_stats(
    session: AsyncSession, tenant_id: uuid.UUID, company_id: uuid.UUID, since: datetime | None
) -> JobStats:
    """Counts by status and by type, p50 and p95 durations (start to completion of COMPLETED jobs) per type,
    and tokens and cost in total and per type; 404 for a company that is not the tenant's."""
    await company_of_tenant(session, tenant_id, company_id)
    conditions = [col(AIJob.tenant_id) == tenant_id, col(AIJob.company_id) == company_id]
    if since is not None:
        conditions.append(col(AIJob.created_at) >= (since if since.tzinfo else since.replace(tzinfo=UTC)))
    counts = await session.exec(  # type: ignore[call-overload]
        sa.select(
            col(AIJob.job_type),
            col(AIJob.status),
            sa.func.count(),
            sa.func.sum(col(AIJob.input_tokens)),
            sa.func.sum(col(AIJob.output_tokens)),
            sa.func.sum(col(AIJob.cost_usd)),
        )
        .where(*conditions)
        .group_by(col(AIJob.job_type), col(AIJob.status))
    )
    seconds = sa.extract("epoch", col(AIJob.completed_at) - col(AIJob.started_at))
    durations = await session.exec(  # type: ignore[call-overload]
        sa.select(
            col(AIJob.job_type),
            sa.func.count(),
            sa.func.percentile_cont(0.5).within_group(seconds),
            sa.func.percentile_cont(0.95).within_group(seconds),
        )
        .where(
            *conditions,
            col(AIJob.status) == JobStatus.COMPLETED.value,
            col(AIJob.started_at).is_not(None),
            col(AIJob.completed_at).is_not(None),
        )
        .group_by(col(AIJob.job_type))
    )
    stats = empty_stats()
    for job_type, status, count, input_tokens, output_tokens, cost in counts.all():
        of_type = stats.by_type[JobType(job_type)]
        for totals in (stats.usage, of_type.usage):
            totals.input_tokens += int(input_tokens or 0)
            totals.output_tokens += int(output_tokens or 0)
            totals.cost_usd += Decimal(cost or 0)
        of_type.count += count
        of_type.by_status[JobStatus(status)] += count
        stats.by_status[JobStatus(status)] += count
        stats.total += count
    for job_type, count, p50, p95 in durations.all():
        stats.by_type[JobType(job_type)].durations = Durations(
            count=count, p50_seconds=round(float(p50), 3), p95_seconds=round(float(p95), 3)
        )
    return stats
