"""Company search first: `GET /companies/lookup?q=` finds candidates on the web to create a company from.

Included before the companies router, whose `/companies/{company_id}` would otherwise take "lookup" for an id.
"""

from typing import Annotated

from fastapi import Query

from api.deps import MarketerDep, SettingsDep, TemporalDep
from api.errors import PROBLEMS, Problem, problems
from api.routing import SlashRouter
from api.services.company_lookup import lookup_companies
from models.lookup import QUERY_MAX_LENGTH, QUERY_MIN_LENGTH, LookupResult

router = SlashRouter(prefix="/companies", tags=["companies"])

LOOKUP_PROBLEMS = problems(
    _502="the search provider failed (after its retries, or refused: a bad key, the daily quota used up)",
    _503="the workflow engine is not reachable",
    _504="no worker answered in time",
)


def checked_query(q: str) -> str:
    """The query on one line; 422 when fewer than 2 characters are left (FastAPI checked the raw length) or it
    holds a NUL character (as a body may not)."""
    query = " ".join(q.split())
    message = ""
    if "\x00" in query:
        message = "text must not contain NUL characters"
    elif len(query) < QUERY_MIN_LENGTH:
        message = f"the company name needs at least {QUERY_MIN_LENGTH} characters besides spaces"
    if message:
        raise Problem(
            422,
            "the request is not valid: query.q",
            title="Unprocessable Content",
            errors=[{"field": "query.q", "message": message, "type": "value_error"}],
        )
    return query


@router.get(
    "/lookup",
    response_model=LookupResult,
    responses={**PROBLEMS, **LOOKUP_PROBLEMS},
    summary="Find a company on the web by name",
    description=(
        "Up to 10 candidates (one per website) to create a company from: from Google's Programmable Search when "
        "the deployment has its key, else from the research providers' web search, else (offline) three samples "
        "marked as such (`source` says which). Waits for the search, about 25 s at most."
    ),
)
async def lookup_company(
    principal: MarketerDep,
    settings: SettingsDep,
    temporal: TemporalDep,
    q: Annotated[
        str,
        Query(
            min_length=QUERY_MIN_LENGTH,
            max_length=QUERY_MAX_LENGTH,
            description="the company's name, or part of it",
            examples=["Acme Robotics"],
        ),
    ],
) -> LookupResult:
    return await lookup_companies(temporal, settings, principal, checked_query(q))
