"""The studio's companies: the tenant's list, and a company's page with its latest DNA (each data point with its
numbered sources), its pipelines, the form that changes it and, for an admin, the one that deletes it.

Changes and deletions go through api/services/companies.py, as PATCH and DELETE /api/v1/companies/{id} do: the
same checks, the same refusals (shown on the page, with nothing changed). Another tenant's company is the 404 page.
Everything on these pages that a person or a model wrote is escaped text; links are made only of http(s) URLs.
"""

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.datastructures import FormData

from api.deps import OptionalTemporalDep, SessionDep, SettingsDep
from api.errors import Problem
from api.services.companies import (
    CompanyUpdate,
    company_of_tenant,
    company_pipelines,
    delete_company,
    remove_media_files,
    update_company,
)
from api.studio.pages import StudioNotFound, page, see_other
from api.studio.sessions import StudioUser, StudioUserDep, checked_form
from models.enums import Role
from models.media_store import media_root
from models.tables import Company, CompanyDNA

router = APIRouter(prefix="/studio", include_in_schema=False)

# The edit form's fields, in CompanyUpdate's names; the clearable ones are sent as null when left empty.
FORM_FIELDS = ("name", "website", "country", "language", "industry", "timezone")
CLEARABLE = {"website", "country", "industry"}
PIPELINES_SHOWN = 50
CONFIRM_FIELD = "confirm"
CONFIRM_TEXT = "I understand this deletes everything this company produced"
DELETE_REASON = "Only an admin can delete a company: this key has the {role} role."


# ---- what the company page shows ---------------------------------------------------------------------------------


def web_link(value: Any) -> str | None:
    """The value as a link target if it is an http(s) URL, else None (shown as text: no `javascript:` links)."""
    text = str(value or "").strip()
    return text if text.lower().startswith(("http://", "https://")) else None


@dataclass(frozen=True)
class SourceView:
    number: int  # 1-based, as the page numbers them
    url: str
    link: str | None
    title: str


@dataclass(frozen=True)
class DataPointView:
    name: str
    category: str
    value: str
    sources: list[int] = field(default_factory=list)  # numbers of SourceView


def dna_view(dna: CompanyDNA | None) -> tuple[list[DataPointView], list[SourceView]]:
    """The DNA's data points and sources for the page; a data point's stored `source_indexes` are 0-based
    positions in the source list, shown as 1-based numbers (an index outside the list is left out)."""
    if dna is None:
        return [], []
    sources = []
    for number, source in enumerate(dna.sources or [], start=1):
        item = source if isinstance(source, dict) else {"url": source}
        url = str(item.get("url") or "")
        sources.append(SourceView(number, url, web_link(url), str(item.get("title") or "")))
    points = []
    for point in dna.data_points or []:
        if not isinstance(point, dict):
            continue
        indexes = point.get("source_indexes") or []
        numbers = sorted(
            {i + 1 for i in indexes if isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(sources)}
        )
        points.append(
            DataPointView(
                name=str(point.get("name") or ""),
                category=str(point.get("category") or ""),
                value=str(point.get("value") or ""),
                sources=numbers,
            )
        )
    return points, sources


def form_values(company: Company) -> dict[str, str]:
    return {name: str(getattr(company, name) or "") for name in FORM_FIELDS}


def can_delete(user: StudioUser) -> bool:
    return user.role.allows(Role.ADMIN)


async def owned_company(session: AsyncSession, user: StudioUser, company_id: uuid.UUID) -> Company:
    try:
        return await company_of_tenant(session, user.principal.tenant_id, company_id)
    except Problem:
        raise StudioNotFound() from None


async def company_page(
    request: Request,
    user: StudioUser,
    session: AsyncSession,
    company: Company,
    *,
    status: int = 200,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    error: str = "",
    delete_error: str = "",
) -> Response:
    dna = (
        await session.exec(
            select(CompanyDNA)
            .where(col(CompanyDNA.company_id) == company.id)
            .order_by(col(CompanyDNA.version).desc())
            .limit(1)
        )
    ).first()
    points, sources = dna_view(dna)
    pipelines, pipeline_count = await company_pipelines(session, company.id, PIPELINES_SHOWN, 0)
    return page(
        request,
        "company.html",
        user,
        status_code=status,
        company=company,
        website_link=web_link(company.website),
        dna=dna,
        points=points,
        sources=sources,
        pipelines=pipelines,
        pipeline_count=pipeline_count,
        values=values if values is not None else form_values(company),
        errors=errors or {},
        error=error,
        delete_error=delete_error,
        can_delete=can_delete(user),
        delete_reason=DELETE_REASON.format(role=user.role.value),
        confirm_field=CONFIRM_FIELD,
        confirm_text=CONFIRM_TEXT,
        notice=request.query_params.get("notice", ""),
    )


# ---- the pages -------------------------------------------------------------------------------------------------


@router.get("/companies", response_class=HTMLResponse)
async def companies_page(request: Request, user: StudioUserDep, session: SessionDep) -> Response:
    companies = (
        await session.exec(
            select(Company)
            .where(col(Company.tenant_id) == user.principal.tenant_id)
            .order_by(col(Company.created_at).desc(), col(Company.id).desc())
        )
    ).all()
    return page(
        request,
        "companies.html",
        user,
        companies=[(company, web_link(company.website)) for company in companies],
        notice=request.query_params.get("notice", ""),
    )


@router.get("/companies/{company_id}", response_class=HTMLResponse)
async def company_view(request: Request, company_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    company = await owned_company(session, user, company_id)
    return await company_page(request, user, session, company)


def update_from(form: FormData) -> dict[str, Any]:
    """The posted fields as a PATCH body: text trimmed, an empty clearable field as null (cleared); a field the
    form did not send is left out (kept)."""
    body: dict[str, Any] = {}
    for name in FORM_FIELDS:
        if name in form:
            text = str(form.get(name) or "").strip()
            body[name] = None if name in CLEARABLE and not text else text
    return body


def field_errors(exc: ValidationError) -> tuple[dict[str, str], str]:
    """Messages per form field, and one for the form as a whole (an error of no single field)."""
    by_field: dict[str, str] = {}
    general = []
    for err in exc.errors():
        message = str(err.get("msg", "not valid")).removeprefix("Value error, ")
        location = [str(part) for part in err.get("loc", ())]
        if location and location[0] in FORM_FIELDS:
            by_field.setdefault(location[0], message)
        else:
            general.append(message)
    return by_field, "; ".join(general)


@router.post("/companies/{company_id}", response_class=HTMLResponse)
async def company_save(request: Request, company_id: uuid.UUID, user: StudioUserDep, session: SessionDep) -> Response:
    form = await checked_form(request, user)
    company = await owned_company(session, user, company_id)
    posted = {**form_values(company), **{name: str(form.get(name) or "") for name in FORM_FIELDS if name in form}}
    try:
        update = CompanyUpdate.model_validate(update_from(form))
    except ValidationError as exc:
        errors, general = field_errors(exc)
        error = f"{general + '. ' if general else ''}Correct the fields marked below. Nothing was changed."
        return await company_page(
            request, user, session, company, status=422, values=posted, errors=errors, error=error
        )
    await update_company(session, company, update)
    return see_other(f"/studio/companies/{company_id}?notice={quote('Company saved.')}")


@router.post("/companies/{company_id}/delete", response_class=HTMLResponse)
async def company_delete(
    request: Request,
    company_id: uuid.UUID,
    user: StudioUserDep,
    session: SessionDep,
    settings: SettingsDep,
    temporal: OptionalTemporalDep,
) -> Response:
    form = await checked_form(request, user)
    company = await owned_company(session, user, company_id)
    if not can_delete(user):
        reason = DELETE_REASON.format(role=user.role.value)
        return await company_page(request, user, session, company, status=403, delete_error=reason)
    if form.get(CONFIRM_FIELD) != "yes":
        error = f"Tick “{CONFIRM_TEXT}” to delete the company. Nothing was deleted."
        return await company_page(request, user, session, company, status=422, delete_error=error)
    name = company.name
    try:
        deletion = await delete_company(session, temporal, company)
    except Problem as refusal:
        await session.rollback()  # the company's row lock goes now, not when the page is sent
        if refusal.status == 404:
            raise StudioNotFound() from None
        company = await owned_company(session, user, company_id)
        return await company_page(request, user, session, company, status=refusal.status, delete_error=refusal.detail)
    await asyncio.to_thread(remove_media_files, media_root(settings), deletion.media_paths)
    return see_other(f"/studio/companies?notice={quote(f'Deleted {name} and everything it produced.')}")
