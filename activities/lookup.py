"""The company lookup ("New company" search): candidates from Google's Programmable Search JSON API, else from the
research providers' grounded search, else (offline) three clearly marked samples; one per website, at most ten."""

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import StageDeps
from activities.dna import numbered_sources
from activities.jobs import OFFLINE_PROVIDER
from activities.prompts import render
from models.generation import SAMPLE_MARKER
from models.lookup import (
    MAX_CANDIDATES,
    CompanyCandidate,
    FoundCompanies,
    FoundCompany,
    LookupErrorType,
    LookupRequest,
    LookupResult,
    LookupSource,
    deduplicated,
)
from models.names import Activity, slug
from models.settings import Settings
from providers.base import AIProviderError, AIRateLimitError, WorkKind
from providers.router import ProviderRouter
from providers.structured import check_output
from providers.usage import track_usage

GOOGLE_SEARCH_PATH = "/customsearch/v1"
# Below the attempt's 20 s (workflows/policies.py LOOKUP_TIMEOUT): a slow Google fails the attempt with our message.
GOOGLE_TIMEOUT_SECONDS = 15.0
# A Retry-After longer than this is not waited for: the person waiting gets the 502 sooner instead.
MAX_RETRY_DELAY_SECONDS = 5.0
# Google's reasons (`error.errors[].reason`, `error.details[].reason`) that no retry within seconds can fix.
DAILY_QUOTA_REASONS = {"dailyLimitExceeded", "dailyLimitExceededUnreg"}
BAD_KEY_REASONS = {"keyInvalid", "API_KEY_INVALID", "keyExpired", "API_KEY_EXPIRED"}
DISABLED_REASONS = {"accessNotConfigured", "SERVICE_DISABLED", "API_KEY_SERVICE_BLOCKED", "BILLING_DISABLED"}

# Offline samples: a suffix for the name and the host, and a country.
SAMPLES = (("", "", "United States"), (" Group", "-group", "Germany"), (" Labs", "-labs", "Czech Republic"))
SAMPLE_LABEL = " (sample)"

_SPACES = re.compile(r"\s+")
# "Acme Coffee | Fresh roasts" -> "Acme Coffee": a page title's first part names the site more often than not.
_TITLE_SEPARATOR = re.compile(r"\s+[|\u2013\u2014\u00b7:-]\s+")


class CompanyLookup:
    def __init__(self, deps: StageDeps) -> None:
        self.deps = deps

    @activity.defn(name=Activity.LOOKUP_COMPANY)
    async def lookup_company(self, request: LookupRequest) -> LookupResult:
        query = _clean(request.query)
        settings = self.deps.settings
        with track_usage() as usage:
            if google_configured(settings):
                source, found = LookupSource.GOOGLE, await google_candidates(settings, query)
            elif research_is_offline(self.deps.router):
                source, found = LookupSource.OFFLINE, sample_candidates(query)
            else:
                source, found = LookupSource.RESEARCH, await research_candidates(self.deps.router, query)
        result = LookupResult(candidates=deduplicated(found), source=source)
        activity.logger.info(
            "company lookup: %d candidates from %s (%d provider calls, %s USD)",
            len(result.candidates),
            source.value,
            usage.calls,
            usage.cost_usd,
        )
        return result


def google_configured(settings: Settings) -> bool:
    key = settings.google_search_api_key
    return bool(key is not None and key.get_secret_value() and settings.google_search_engine_id)


def research_is_offline(router: ProviderRouter) -> bool:
    chain = router.chain(WorkKind.RESEARCH)
    return bool(chain) and all(provider.name == OFFLINE_PROVIDER for provider in chain)


# ---- Google's Programmable Search JSON API ---------------------------------------------------------------------


async def google_candidates(settings: Settings, query: str) -> list[CompanyCandidate]:
    """One page (10 results) of `GET /customsearch/v1`. Failures are ApplicationErrors: a rate limit, a 5xx or no
    answer is retried (SearchUnavailable); a refusal (bad key, quota used up for the day) is final (SearchRejected).
    No message ever holds the key (it travels in the query string)."""
    key = settings.google_search_api_key.get_secret_value() if settings.google_search_api_key else ""
    params = {"key": key, "cx": settings.google_search_engine_id or "", "q": query, "num": str(MAX_CANDIDATES)}
    try:
        async with httpx.AsyncClient(
            base_url=settings.google_search_base_url, timeout=GOOGLE_TIMEOUT_SECONDS
        ) as client:
            response = await client.get(GOOGLE_SEARCH_PATH, params=params)
    except httpx.HTTPError as exc:
        detail = _redact(str(exc), key) or type(exc).__name__
        raise ApplicationError(
            f"Google search could not be reached: {detail}", type=LookupErrorType.SEARCH_UNAVAILABLE
        ) from None
    if response.status_code == 200:
        try:
            payload = response.json()
        except ValueError:
            raise ApplicationError(
                "Google search answered with a body that is not JSON", type=LookupErrorType.SEARCH_UNAVAILABLE
            ) from None
        return candidates_from_google(payload)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:300]
    raise google_failure(response.status_code, body, response.headers.get("retry-after"), key)


def google_failure(status: int, body: Any, retry_after: str | None = None, key: str = "") -> ApplicationError:
    """The ApplicationError for one of Google's error answers (`{"error": {"code", "message", "errors": [{reason}],
    "status", "details": [{reason}]}}`)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = _clean(str(error.get("message") or ""))
        listed = [*(error.get("errors") or []), *(error.get("details") or [])]
        reasons = [str(item["reason"]) for item in listed if isinstance(item, dict) and item.get("reason")]
    else:
        message, reasons = _clean(str(body or "")), []
    said = _redact(f"{status} {reasons[0] if reasons else ''}".strip() + (f": {message}" if message else ""), key)
    lowered = message.lower()
    daily = bool(DAILY_QUOTA_REASONS & set(reasons)) or "per day" in lowered or "daily limit" in lowered
    if (status == 429 and not daily) or status >= 500 or status == 408:
        delay = _retry_delay(retry_after)
        return ApplicationError(
            f"Google search is rate limited or failing ({said})",
            type=LookupErrorType.SEARCH_UNAVAILABLE,
            next_retry_delay=delay,
        )
    if daily:
        hint = (
            "the daily query quota of the Custom Search JSON API is used up; it resets at midnight Pacific Time "
            "(enable billing on the Google Cloud project for more)"
        )
    elif BAD_KEY_REASONS & set(reasons) or "api key not valid" in lowered or "api key expired" in lowered:
        hint = "GOOGLE_SEARCH_API_KEY is not valid"
    elif DISABLED_REASONS & set(reasons) or "has not been used" in lowered or "is disabled" in lowered:
        hint = "the Custom Search API is not enabled (or not billed) for the key's Google Cloud project"
    elif status == 400:
        hint = "check GOOGLE_SEARCH_ENGINE_ID (the cx of the search engine) and GOOGLE_SEARCH_API_KEY"
    else:
        hint = "check GOOGLE_SEARCH_API_KEY and GOOGLE_SEARCH_ENGINE_ID"
    return ApplicationError(
        f"Google search refused the request: {hint} ({said})", type=LookupErrorType.SEARCH_REJECTED, non_retryable=True
    )


def candidates_from_google(payload: Any) -> list[CompanyCandidate]:
    """Candidates from a cse.list answer, in Google's order: the name from the page's `og:site_name` (else the
    title's first part), the website as the result's origin, the description from `og:description` (else the
    snippet), the result's link as the source. Results without an http(s) link are skipped."""
    items = payload.get("items") if isinstance(payload, dict) else None
    found: list[CompanyCandidate] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        link = item.get("link")
        website = _origin(link) if isinstance(link, str) else None
        if website is None or not isinstance(link, str):
            continue
        meta = _metatags(item)
        host = urlsplit(website).hostname or website
        name = (
            _clean(meta.get("og:site_name"))
            or _TITLE_SEPARATOR.split(_clean(item.get("title")))[0]
            or _clean(item.get("displayLink"))
            or host
        )
        country = _clean(meta.get("og:country-name") or meta.get("og:country_name"))
        found.append(
            CompanyCandidate(
                name=name[:200],
                website=website,
                country=country[:100] or None,
                description=(_clean(meta.get("og:description")) or _clean(item.get("snippet")))[:1000],
                source=link[:2000],
            )
        )
    return found


def _metatags(item: dict[str, Any]) -> dict[str, Any]:
    """The first `pagemap.metatags` entry (Google lists a page's meta tags there, one object per page)."""
    pagemap = item.get("pagemap")
    tags = pagemap.get("metatags") if isinstance(pagemap, dict) else None
    first = tags[0] if isinstance(tags, list) and tags else None
    return first if isinstance(first, dict) else {}


def _retry_delay(retry_after: str | None) -> timedelta | None:
    try:
        seconds = float(retry_after) if retry_after else None
    except ValueError:
        return None
    return timedelta(seconds=min(max(seconds, 0.0), MAX_RETRY_DELAY_SECONDS)) if seconds is not None else None


# ---- the research providers' grounded search -------------------------------------------------------------------


async def research_candidates(router: ProviderRouter, query: str) -> list[CompanyCandidate]:
    """Asks the research chain (Perplexity, Gemini with Google Search) for the matching companies as JSON; an answer
    that is not that JSON is turned into it by one extraction call."""
    try:
        research = await router.research(render("company_lookup", query=query, limit=MAX_CANDIDATES))
        found, problems = check_output(research.text, FoundCompanies)
        if problems:
            activity.logger.info("company lookup: the research answer was not the JSON asked for; extracting it")
            prompt = render(
                "company_lookup_extract",
                query=query,
                limit=MAX_CANDIDATES,
                research=research.text,
                sources=numbered_sources(research),
            )
            found = await router.generate_json(prompt, FoundCompanies)
    except AIProviderError as exc:
        delay = None
        if isinstance(exc, AIRateLimitError) and exc.retry_after is not None:
            delay = timedelta(seconds=min(exc.retry_after, MAX_RETRY_DELAY_SECONDS))
        raise ApplicationError(
            f"the research search failed: {exc}",
            type=exc.type_name,
            non_retryable=not exc.retryable,
            next_retry_delay=delay,
        ) from None
    assert isinstance(found, FoundCompanies)
    return [candidate for candidate in map(candidate_from_research, found.companies) if candidate is not None]


def candidate_from_research(company: FoundCompany) -> CompanyCandidate | None:
    name = _clean(company.name)[:200]
    if not name:
        return None
    website = (company.website or "").strip()
    if website and "://" not in website:
        website = "https://" + website  # "acme.example" is a website too
    source = (company.source_url or "").strip()
    return CompanyCandidate(
        name=name,
        website=_origin(website),
        country=_clean(company.country)[:100] or None,
        description=_clean(company.description)[:1000],
        source=source[:2000] if source.startswith(("http://", "https://")) else None,
    )


# ---- offline ---------------------------------------------------------------------------------------------------


def sample_candidates(query: str) -> list[CompanyCandidate]:
    """Three made-up candidates named after the query, marked as samples in their names, their `.example` websites
    and their descriptions (which start with the project's sample marker)."""
    base = slug(query) or "company"
    description = (
        f"{SAMPLE_MARKER} A sample candidate for \u201c{query}\u201d: no web search was made. Set "
        "GOOGLE_SEARCH_API_KEY and GOOGLE_SEARCH_ENGINE_ID, or a research provider's key, to find real companies."
    )
    candidates = []
    for name_suffix, host_suffix, country in SAMPLES:
        room = 200 - len(name_suffix) - len(SAMPLE_LABEL)
        candidates.append(
            CompanyCandidate(
                name=f"{query[:room].rstrip()}{name_suffix}{SAMPLE_LABEL}",
                website=f"https://{base}{host_suffix}.example",
                country=country,
                description=description[:1000],
                source=None,
            )
        )
    return candidates


# ---- text and URLs ---------------------------------------------------------------------------------------------


def _clean(value: Any) -> str:
    """Text on one line, trimmed; anything else (a missing field, a number) is ""."""
    return _SPACES.sub(" ", value).strip() if isinstance(value, str) else ""


def _origin(url: str | None) -> str | None:
    """`https://www.Acme.example/about?x=1` -> `https://www.acme.example`: the company's website, not the page."""
    if not url or not url.startswith(("http://", "https://")):
        return None
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _redact(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text
