"""The company lookup ("New company" search): its Temporal contracts, error types and the research answer's schema
(its workflow and activity names are in models/names.py)."""

import uuid
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

MAX_CANDIDATES = 10
QUERY_MIN_LENGTH = 2
QUERY_MAX_LENGTH = 200


class LookupSource(StrEnum):
    """Where the candidates came from."""

    GOOGLE = "google"  # Google's Programmable Search (GOOGLE_SEARCH_API_KEY and GOOGLE_SEARCH_ENGINE_ID set)
    RESEARCH = "research"  # the research providers' grounded search (Perplexity, Gemini)
    OFFLINE = "offline"  # no search at all: clearly marked samples


class LookupErrorType(StrEnum):
    """The `type` of the lookup's ApplicationErrors; the API answers both with 502."""

    SEARCH_REJECTED = "SearchRejected"  # the search provider refused the request (bad key, daily quota): final
    SEARCH_UNAVAILABLE = "SearchUnavailable"  # rate limited, 5xx, unreachable: retried, then final


class LookupRequest(BaseModel):
    tenant_id: uuid.UUID
    query: str = Field(min_length=QUERY_MIN_LENGTH, max_length=QUERY_MAX_LENGTH)


class CompanyCandidate(BaseModel):
    """A company the search found: enough to create it (name, website, country) and to recognise it."""

    name: str = Field(min_length=1, max_length=200, examples=["Acme Robotics"])
    website: str | None = Field(default=None, max_length=2000, examples=["https://acme-robotics.example"])
    country: str | None = Field(default=None, max_length=100, examples=["Czech Republic"])
    description: str = Field(default="", max_length=1000, examples=["Robots for small factories."])
    source: str | None = Field(
        default=None,
        max_length=2000,
        description="the page the candidate was found on",
        examples=["https://acme.example/about"],
    )


class LookupResult(BaseModel):
    candidates: list[CompanyCandidate] = Field(default_factory=list, max_length=MAX_CANDIDATES)
    source: LookupSource


def website_host(website: str | None) -> str | None:
    """`https://www.Acme.example/about` -> `acme.example`: what two candidates of one company share."""
    if not website:
        return None
    host = (urlsplit(website).hostname or "").lower().rstrip(".")
    return host.removeprefix("www.") or None


def deduplicated(candidates: list[CompanyCandidate], limit: int = MAX_CANDIDATES) -> list[CompanyCandidate]:
    """The first candidate per website host (per name when there is no website), at most `limit`."""
    seen: set[str] = set()
    kept: list[CompanyCandidate] = []
    for candidate in candidates:
        host = website_host(candidate.website)
        key = f"host:{host}" if host else f"name:{candidate.name.strip().lower()}"
        if key in seen:
            continue
        seen.add(key)
        kept.append(candidate)
        if len(kept) == limit:
            break
    return kept


# ---- what the research providers are asked for (activities/prompts/company_lookup.md) -----------------------


class FoundCompany(BaseModel):
    name: str = Field(min_length=1, max_length=200, description="the company's name as it presents itself")
    website: str | None = Field(default=None, description="the company's own website, https://...")
    country: str | None = Field(default=None, description="the country of its headquarters, in English")
    description: str = Field(default="", description="what the company does, one or two sentences")
    source_url: str | None = Field(default=None, description="the URL of the page this information comes from")


class FoundCompanies(BaseModel):
    companies: list[FoundCompany] = Field(default_factory=list)
