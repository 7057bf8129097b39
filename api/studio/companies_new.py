"""The studio's "New company": search the web for the company first (the API's lookup, through the same service),
then create one of the candidates, or a company typed in by hand, as POST /api/v1/companies does.

Marketers and up may search and create. Every create form carries the session's CSRF token.
"""

from functools import cache
from typing import Any
from urllib.parse import quote
from zoneinfo import available_timezones

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api.deps import SessionDep, SettingsDep, get_temporal
from api.errors import Problem
from api.routes.companies import create_company
from api.services.company_lookup import lookup_companies
from api.studio.pages import page, see_other
from api.studio.sessions import StudioUser, StudioUserDep, checked_form
from models.api import CompanyCreate
from models.lookup import QUERY_MAX_LENGTH, QUERY_MIN_LENGTH, LookupResult

router = APIRouter(prefix="/studio", include_in_schema=False)

TEMPLATE = "company_new.html"
FORM_FIELDS = ("name", "website", "country", "timezone")
FIELD_LABELS = {"name": "Name", "website": "Website", "country": "Country", "timezone": "Time zone"}
DEFAULT_TIME_ZONE = "UTC"


@cache
def time_zones() -> list[str]:
    """IANA names for the time zone fields' suggestions (the field takes any name CompanyCreate accepts)."""
    return sorted(zone for zone in available_timezones() if "/" in zone or zone == DEFAULT_TIME_ZONE)


def new_company_page(
    request: Request,
    user: StudioUser,
    *,
    query: str = "",
    result: LookupResult | None = None,
    error: str = "",
    manual: dict[str, str] | None = None,
    create_error: str = "",
    status_code: int = 200,
) -> Response:
    return page(
        request,
        TEMPLATE,
        user,
        status_code=status_code,
        query=query,
        result=result,
        error=error,
        manual=manual or {"timezone": DEFAULT_TIME_ZONE},
        create_error=create_error,
        time_zones=time_zones(),
        default_time_zone=DEFAULT_TIME_ZONE,
        min_length=QUERY_MIN_LENGTH,
        max_length=QUERY_MAX_LENGTH,
    )


@router.get("/companies/new", response_class=HTMLResponse)
async def new_company(request: Request, user: StudioUserDep, settings: SettingsDep, q: str = "") -> Response:
    """The search form; with `q`, the candidates a web search found (or why there are none)."""
    query = " ".join(q.split())
    if not q:
        return new_company_page(request, user)
    if not QUERY_MIN_LENGTH <= len(query) <= QUERY_MAX_LENGTH or "\x00" in query:
        error = f"Type between {QUERY_MIN_LENGTH} and {QUERY_MAX_LENGTH} characters of the company's name."
        return new_company_page(request, user, query=query[:QUERY_MAX_LENGTH], error=error, status_code=422)
    try:
        temporal = await get_temporal(request)
        result = await lookup_companies(temporal, settings, user.principal, query)
    except Problem as problem:
        error = f"The search did not work: {problem.detail}. Try again, or create the company without search."
        return new_company_page(request, user, query=query, error=error, status_code=problem.status)
    return new_company_page(request, user, query=query, result=result)


@router.post("/companies/new", response_class=HTMLResponse)
async def create_from_form(request: Request, user: StudioUserDep, session: SessionDep) -> Response:
    """Creates a searched candidate or a company typed in by hand, checked as the API checks it."""
    form = await checked_form(request, user)
    posted = {name: " ".join(str(form.get(name) or "").split()) for name in FORM_FIELDS}
    try:
        body = CompanyCreate.model_validate(
            {
                "name": posted["name"],
                "website": posted["website"] or None,
                "country": posted["country"] or None,
                "timezone": posted["timezone"] or DEFAULT_TIME_ZONE,
            }
        )
    except ValidationError as invalid:
        error = "; ".join(_field_error(err) for err in invalid.errors(include_url=False))
        return new_company_page(
            request, user, manual=posted, create_error=f"{error}. Nothing was created.", status_code=422
        )
    company = await create_company(body, user.principal, session)
    notice = f"{company.name} was created."
    return see_other(f"/studio/companies/{company.id}?notice={quote(notice)}")


def _field_error(err: Any) -> str:
    location = [str(part) for part in err.get("loc", ())]
    field = FIELD_LABELS.get(location[0], location[0]) if location else "The form"
    message = str(err.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{field}: {message}"
