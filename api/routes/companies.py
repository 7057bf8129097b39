"""Companies of the caller's tenant: creating, reading, changing and deleting them, and their pipelines and DNA."""

import asyncio
import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from sqlmodel import col, select

from api.deps import (
    KeyDep,
    LimitQuery,
    MarketerDep,
    OffsetQuery,
    OptionalTemporalDep,
    SessionDep,
    SettingsDep,
    check_role,
    owned_by_path,
)
from api.errors import PROBLEMS, Problem, problems
from api.routing import SlashRouter
from api.services.companies import (
    CompanyUpdate,
    company_of_tenant,
    company_pipelines,
    delete_company,
    remove_media_files,
    update_company,
)
from models.api import CompanyCreate, CompanyDNAPublic, CompanyPublic, Page
from models.enums import Role
from models.media_store import media_root
from models.pipeline import PipelineSummary
from models.tables import Company, CompanyDNA

router = SlashRouter(prefix="/companies", tags=["companies"])

__all__ = ["OwnCompanyDep", "company_of_tenant", "own_company", "router"]

DELETE_PROBLEMS = {
    **PROBLEMS,
    **problems(
        _409="a pipeline, job or other workflow of the company still runs (the refusal names them): cancel it "
        "first; nothing was deleted",
        _503="the workflow engine is not reachable, so nothing was deleted",
    ),
}


@owned_by_path("company_id")
async def own_company(company_id: uuid.UUID, principal: MarketerDep, session: SessionDep) -> Company:
    """The path's company as a dependency: another tenant's is a 404 before the body is even validated."""
    return await company_of_tenant(session, principal.tenant_id, company_id)


OwnCompanyDep = Annotated[Company, Depends(own_company)]


@owned_by_path("company_id", role=Role.ADMIN)
async def company_to_delete(company_id: uuid.UUID, principal: KeyDep, session: SessionDep) -> Company:
    """The company an admin deletes: another tenant's is a 404 whatever the key's role, then a key below admin is
    a 403 (deleting everything a company produced is the admin's call)."""
    company = await company_of_tenant(session, principal.tenant_id, company_id)
    check_role(principal, Role.ADMIN)
    return company


@router.post("", status_code=201, response_model=CompanyPublic, responses=PROBLEMS, summary="Create a company")
async def create_company(body: CompanyCreate, principal: MarketerDep, session: SessionDep) -> Company:
    company = Company(tenant_id=principal.tenant_id, **body.model_dump())
    session.add(company)
    await session.commit()
    await session.refresh(company)
    return company


@router.get("", response_model=Page[CompanyPublic], responses=PROBLEMS, summary="List the tenant's companies")
async def list_companies(
    principal: MarketerDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> dict[str, object]:
    where = Company.tenant_id == principal.tenant_id
    count = (await session.exec(select(sa.func.count()).select_from(Company).where(where))).one()
    rows = (
        await session.exec(
            select(Company)
            .where(where)
            .order_by(col(Company.created_at).desc(), col(Company.id).desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    return {"data": rows, "count": count, "limit": limit, "offset": offset}


@router.get("/{company_id}", response_model=CompanyPublic, responses=PROBLEMS, summary="One company")
async def get_company(company_id: uuid.UUID, principal: MarketerDep, session: SessionDep) -> Company:
    return await company_of_tenant(session, principal.tenant_id, company_id)


@router.patch(
    "/{company_id}",
    response_model=CompanyPublic,
    responses=PROBLEMS,
    summary="Change a company: the fields sent, checked as on create; bad input changes nothing",
)
async def patch_company(company: OwnCompanyDep, body: CompanyUpdate, session: SessionDep) -> Company:
    return await update_company(session, company, body)


@router.delete(
    "/{company_id}",
    status_code=204,
    responses=DELETE_PROBLEMS,
    summary="Delete a company with everything it produced, its media files too (admin; nothing may be running)",
)
async def remove_company(
    company: Annotated[Company, Depends(company_to_delete)],
    session: SessionDep,
    settings: SettingsDep,
    temporal: OptionalTemporalDep,
) -> None:
    deletion = await delete_company(session, temporal, company)
    # After the commit: the rows are gone for good, so their files may go; one that cannot is logged and left.
    await asyncio.to_thread(remove_media_files, media_root(settings), deletion.media_paths)


@router.get(
    "/{company_id}/pipelines",
    response_model=Page[PipelineSummary],
    responses=PROBLEMS,
    summary="The company's pipelines, newest first",
)
async def list_company_pipelines(
    company: OwnCompanyDep,
    session: SessionDep,
    limit: LimitQuery = 50,
    offset: OffsetQuery = 0,
) -> dict[str, object]:
    rows, count = await company_pipelines(session, company.id, limit, offset)
    return {"data": rows, "count": count, "limit": limit, "offset": offset}


@router.get(
    "/{company_id}/dna", response_model=CompanyDNAPublic, responses=PROBLEMS, summary="The company's latest DNA"
)
async def get_company_dna(company_id: uuid.UUID, principal: MarketerDep, session: SessionDep) -> CompanyDNA:
    await company_of_tenant(session, principal.tenant_id, company_id)
    dna = (
        await session.exec(
            select(CompanyDNA)
            .where(CompanyDNA.company_id == company_id)
            .order_by(col(CompanyDNA.version).desc())
            .limit(1)
        )
    ).first()
    if dna is None:
        raise Problem(404, "this company has no DNA yet: start POST /api/v1/ai/companies/{id}/scrape-dna/")
    return dna
