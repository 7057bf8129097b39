"""Companies of the caller's tenant, and what the pipeline produced for them."""

import uuid
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from sqlmodel import col, select

from api.deps import LimitQuery, MarketerDep, OffsetQuery, SessionDep, owned_by_path
from api.errors import PROBLEMS, Problem, not_found
from api.routing import SlashRouter
from models.api import CompanyCreate, CompanyDNAPublic, CompanyPublic, Page
from models.tables import Company, CompanyDNA

router = SlashRouter(prefix="/companies", tags=["companies"])


async def company_of_tenant(session: SessionDep, tenant_id: uuid.UUID, company_id: uuid.UUID) -> Company:
    """Another tenant's company is indistinguishable from a missing one."""
    company = await session.get(Company, company_id)
    if company is None or company.tenant_id != tenant_id:
        raise not_found("the company")
    return company


@owned_by_path("company_id")
async def own_company(company_id: uuid.UUID, principal: MarketerDep, session: SessionDep) -> Company:
    """The path's company as a dependency: another tenant's is a 404 before the body is even validated."""
    return await company_of_tenant(session, principal.tenant_id, company_id)


OwnCompanyDep = Annotated[Company, Depends(own_company)]


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
