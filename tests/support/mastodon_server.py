"""A local server on 127.0.0.1 that speaks Mastodon's documented client API with state, for tests: app registration,
OAuth with PKCE (the authorize step approves at once), the account, the instance's configuration, media that
needs processing, statuses with Idempotency-Key, and faults a test injects per route.

Routes (names in brackets are the keys for `inject` and `requests_for`):

    POST /api/v1/apps [apps]                      GET  /oauth/authorize [authorize]
    POST /oauth/token [token]                     POST /oauth/revoke [revoke]
    GET  /api/v1/accounts/verify_credentials [verify_credentials]
    GET  /api/v2/instance [instance]              GET  /api/v1/instance [instance_v1]
    POST /api/v2/media [media]                    GET  /api/v1/media/{id} [media_status]
    POST /api/v1/statuses [statuses]

The server runs in a thread of its own (as tests/support/provider_server.py does), so a test drives it with plain
method calls: `inject("statuses", dropped_after())`, `revoke_token(token)`, `config.max_characters = 1000`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

APPS = "apps"
AUTHORIZE = "authorize"
TOKEN = "token"
REVOKE = "revoke"
VERIFY_CREDENTIALS = "verify_credentials"
INSTANCE = "instance"
INSTANCE_V1 = "instance_v1"
MEDIA = "media"
MEDIA_STATUS = "media_status"
STATUSES = "statuses"

INVALID_TOKEN = {"error": "The access token is invalid"}
OUTSIDE_SCOPES = {"error": "This action is outside the authorized scopes"}
NOT_FOUND = {"error": "Record not found"}
INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method.",
}
INVALID_GRANT = {
    "error": "invalid_grant",
    "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the "
    "redirection URI used in the authorization request, or was issued to another client.",
}
NOT_PROCESSED = "Cannot attach files that have not finished processing. Try again in a moment!"
RATE_LIMIT = 300
RATE_PERIOD_SECONDS = 300
SCOPE_DEFAULT = "read"
# What a slow answer waits for at most when the test never calls `release()`.
SLOW_LIMIT_SECONDS = 30.0

URL = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
MENTION = re.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@[\w]+(?:[.-]+[\w]+)*)?", re.IGNORECASE)


# ---- Faults ------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """What the next request to a route meets. `before`: instead of being carried out (a proxy's 503, a rate
    limit); `after`: once it has been carried out (the status exists, then the answer is lost or wrong)."""

    when: str = "before"
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # reset the connection instead of answering
    delay: float = 0.0  # wait this long (or until `release()`) before answering


def rate_limited(reset_in_seconds: float = 30.0, *, limit: int = RATE_LIMIT) -> Fault:
    """429 as Mastodon's rate limiter answers it, with `X-RateLimit-Reset` `reset_in_seconds` from now."""
    reset = datetime.now(UTC) + timedelta(seconds=reset_in_seconds)
    headers = {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    }
    return Fault(status=429, body={"error": "Too many requests"}, headers=headers)


def failing(status: int = 503, message: str = "") -> Fault:
    """`status` (5xx or any) without carrying the request out."""
    return Fault(status=status, body={"error": message or f"Server answered {status}"})


def failing_after(status: int = 502, message: str = "") -> Fault:
    """Carries the request out, then answers `status`: a gateway error after the work was done."""
    return Fault(when="after", status=status, body={"error": message or f"Server answered {status}"})


def dropped_before() -> Fault:
    """Resets the connection without carrying the request out."""
    return Fault(drop=True)


def dropped_after() -> Fault:
    """Carries the request out, then resets the connection without answering."""
    return Fault(when="after", drop=True)


def slow(seconds: float = SLOW_LIMIT_SECONDS) -> Fault:
    """Carries the request out, then answers only after `seconds` or `release()`, whichever comes first."""
    return Fault(when="after", delay=seconds)


# ---- State -------------------------------------------------------------------------------------------------


@dataclass
class InstanceConfig:
    """What /api/v2/instance says; `api_version = 1` makes /api/v2/instance a 404 (a server before 4.0)."""

    domain: str = "mastodon.test"
    title: str = "Mastodon test instance"
    max_characters: int = 500
    characters_reserved_per_url: int = 23
    max_media_attachments: int = 4
    image_size_limit: int = 16 * 1024 * 1024
    supported_mime_types: list[str] = field(
        default_factory=lambda: ["image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "video/mp4"]
    )
    api_version: int = 2


@dataclass
class Account:
    id: str
    username: str
    display_name: str


@dataclass
class App:
    client_id: str
    client_secret: str
    name: str
    redirect_uris: list[str]
    scopes: set[str]
    website: str | None = None


@dataclass
class Grant:
    """An authorization code and what it was issued for."""

    code: str
    client_id: str
    redirect_uri: str
    scopes: set[str]
    username: str
    code_challenge: str | None
    code_challenge_method: str | None
    used: bool = False


@dataclass
class Token:
    value: str
    client_id: str
    scopes: set[str]
    username: str
    revoked: bool = False


@dataclass
class Media:
    id: str
    username: str
    data: bytes
    mime_type: str
    filename: str
    description: str | None
    polls_left: int
    attached_to: str | None = None

    @property
    def processed(self) -> bool:
        return self.polls_left <= 0


@dataclass
class Status:
    id: str
    username: str
    text: str
    visibility: str
    media_ids: list[str]
    idempotency_key: str | None
    created_at: str


@dataclass
class Recorded:
    """One request as the server saw it (file parts as their name, type and size, not their bytes)."""

    route: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    form: dict[str, Any] = field(default_factory=dict)
    json: Any = None


# ---- The server --------------------------------------------------------------------------------------------


class MastodonServer:
    """Start with `start()`; `base_url` is http://127.0.0.1:<port>. State lives until `reset()`."""

    def __init__(self) -> None:
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._ids = itertools.count(110_000_000_000_000_001)
        self.reset()

    # -- what a test reads and sets --

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Everything back to a fresh instance with one account, alice."""
        with self._lock:
            self.config = InstanceConfig()
            self.accounts: dict[str, Account] = {"alice": Account("109000000000000001", "alice", "Alice Example")}
            self.signed_in = "alice"  # the account that approves at /oauth/authorize
            self.authorize_decision = "approve"  # or "deny": redirects back with error=access_denied
            self.processing_polls = 2  # GETs of a media attachment answered 206 before it is processed
            self.apps: dict[str, App] = {}
            self.grants: dict[str, Grant] = {}
            self.tokens: dict[str, Token] = {}
            self.media: dict[str, Media] = {}
            self.statuses: list[Status] = []
            self.requests: list[Recorded] = []
            self.faults: dict[str, deque[Fault]] = {}
            self.idempotent: dict[tuple[str, str], str] = {}  # (username, Idempotency-Key) -> status id
            self.duplicates = 0  # repeats answered with the status an Idempotency-Key already made
            self._released.clear()

    def inject(self, route: str, *faults: Fault) -> None:
        """The next requests to `route` meet these faults, one each, in order; then it answers normally again."""
        with self._lock:
            self.faults.setdefault(route, deque()).extend(faults)

    def release(self) -> None:
        """Lets every `slow` answer go now."""
        self._released.set()

    def requests_for(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    def issue_token(self, *, scopes: str = "read:accounts write:statuses write:media", username: str = "") -> str:
        """A token as if the OAuth dance had run (for tests of posting that do not need the dance)."""
        with self._lock:
            client_id = f"direct-{secrets.token_hex(4)}"
            value = f"tok_{secrets.token_urlsafe(24)}"
            self.tokens[value] = Token(value, client_id, set(scopes.split()), username or self.signed_in)
            return value

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self.tokens[token].revoked = True

    def revoke_all_tokens(self) -> None:
        with self._lock:
            for token in self.tokens.values():
                token.revoked = True

    def status_by_id(self, status_id: str) -> Status:
        return next(s for s in self.statuses if s.id == status_id)

    def account_url(self, username: str) -> str:
        return f"{self.base_url}/@{username}"

    # -- life cycle --

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._asgi,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mastodon-test-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the Mastodon test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- plumbing --

    @property
    def _app(self) -> Starlette:
        if not hasattr(self, "_starlette"):
            routes = [
                Route("/api/v1/apps", self._wrap(APPS, self._apps), methods=["POST"]),
                Route("/oauth/authorize", self._wrap(AUTHORIZE, self._authorize), methods=["GET"]),
                Route("/oauth/token", self._wrap(TOKEN, self._token), methods=["POST"]),
                Route("/oauth/revoke", self._wrap(REVOKE, self._revoke), methods=["POST"]),
                Route(
                    "/api/v1/accounts/verify_credentials",
                    self._wrap(VERIFY_CREDENTIALS, self._verify_credentials),
                    methods=["GET"],
                ),
                Route("/api/v2/instance", self._wrap(INSTANCE, self._instance_v2), methods=["GET"]),
                Route("/api/v1/instance", self._wrap(INSTANCE_V1, self._instance_v1), methods=["GET"]),
                Route("/api/v2/media", self._wrap(MEDIA, self._upload_media), methods=["POST"]),
                Route("/api/v1/media/{media_id}", self._wrap(MEDIA_STATUS, self._media_status), methods=["GET"]),
                Route("/api/v1/statuses", self._wrap(STATUSES, self._post_status), methods=["POST"]),
            ]
            self._starlette = Starlette(routes=routes)
        return self._starlette

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn's own `send` (a method of its request cycle, which holds the connection) is kept for `_drop`.
        if scope["type"] == "http":
            scope["mastodon.send"] = send
        await self._app(scope, receive, send)

    async def _drop(self, request: Request) -> None:
        """Resets the connection under the request: the client sees it break without an answer."""
        cycle = getattr(request.scope.get("mastodon.send"), "__self__", None)
        transport = getattr(cycle, "transport", None)
        if transport is None:
            raise RuntimeError("cannot reach the connection to drop it (uvicorn internals changed)")
        transport.abort()
        # Lets uvicorn see the connection lost, so what the handler returns is not written anywhere.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _wait(self, seconds: float) -> None:
        # In a worker thread: `release()` comes from the test's thread, and this server's loop must keep answering.
        await asyncio.to_thread(self._released.wait, seconds)

    def _wrap(
        self, route: str, handler: Callable[[Request, Recorded], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            recorded = await self._record(route, request)
            with self._lock:
                queue = self.faults.get(route)
                fault = queue.popleft() if queue else None
            if fault is not None and fault.when == "before":
                if fault.delay:
                    await self._wait(fault.delay)
                if fault.drop:
                    await self._drop(request)
                    return Response(status_code=500)
                if fault.status is not None:
                    return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
            response = await handler(request, recorded)
            if fault is not None and fault.when == "after":
                if fault.delay:
                    await self._wait(fault.delay)
                if fault.drop:
                    await self._drop(request)
                if fault.status is not None:
                    return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
            return response

        return handle

    async def _record(self, route: str, request: Request) -> Recorded:
        headers = {k.lower(): v for k, v in request.headers.items()}
        recorded = Recorded(route, request.method, request.url.path, request.url.query, headers)
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                recorded.json = await request.json()
            except ValueError:
                recorded.json = None
        elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            form = await request.form()
            fields: dict[str, Any] = {}
            for key, value in form.multi_items():
                shown: Any = value
                if isinstance(value, UploadFile):
                    shown = {"filename": value.filename, "content_type": value.content_type, "size": value.size}
                if key.endswith("[]"):
                    fields.setdefault(key, []).append(shown)
                else:
                    fields[key] = shown
            recorded.form = fields
        with self._lock:
            self.requests.append(recorded)
        return recorded

    def _api_headers(self) -> dict[str, str]:
        """Mastodon's rate-limit headers, on every API answer."""
        now = datetime.now(UTC)
        period_start = int(now.timestamp()) // RATE_PERIOD_SECONDS * RATE_PERIOD_SECONDS
        reset = datetime.fromtimestamp(period_start + RATE_PERIOD_SECONDS, UTC)
        used = sum(1 for r in self.requests if r.path.startswith("/api/"))
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(max(0, RATE_LIMIT - used)),
            "X-RateLimit-Reset": reset.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        }

    def _answer(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=self._api_headers())

    def _token_of(self, request: Request, *needed: str) -> Token | Response:
        """The request's valid token with one of the `needed` scopes, else the answer Mastodon gives."""
        authorization = request.headers.get("authorization", "")
        value = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        with self._lock:
            token = self.tokens.get(value)
        if token is None or token.revoked:
            return self._answer(INVALID_TOKEN, 401)
        if needed and not any(scope in token.scopes for scope in needed):
            return self._answer(OUTSIDE_SCOPES, 403)
        return token

    def _params(self, recorded: Recorded) -> dict[str, Any]:
        return recorded.json if isinstance(recorded.json, dict) else recorded.form

    def _next_id(self) -> str:
        return str(next(self._ids))

    # -- apps and OAuth --

    async def _apps(self, request: Request, recorded: Recorded) -> Response:
        params = self._params(recorded)
        name = params.get("client_name")
        redirect = params.get("redirect_uris") or params.get("redirect_uris[]")
        if not name or not redirect:
            missing = "Name can't be blank" if not name else "Redirect URI can't be blank"
            return self._answer({"error": f"Validation failed: {missing}"}, 422)
        redirect_uris = redirect if isinstance(redirect, list) else str(redirect).split()
        scopes = set(str(params.get("scopes") or SCOPE_DEFAULT).split())
        app = App(
            client_id=secrets.token_urlsafe(32),
            client_secret=secrets.token_urlsafe(32),
            name=str(name),
            redirect_uris=[str(u) for u in redirect_uris],
            scopes=scopes,
            website=params.get("website"),
        )
        with self._lock:
            self.apps[app.client_id] = app
        return self._answer(
            {
                "id": self._next_id(),
                "name": app.name,
                "website": app.website,
                "scopes": sorted(app.scopes),
                "redirect_uri": " ".join(app.redirect_uris),
                "redirect_uris": app.redirect_uris,
                "client_id": app.client_id,
                "client_secret": app.client_secret,
                "client_secret_expires_at": 0,
            }
        )

    async def _authorize(self, request: Request, recorded: Recorded) -> Response:
        query = dict(request.query_params)
        with self._lock:
            app = self.apps.get(query.get("client_id", ""))
        if app is None:
            return self._answer(INVALID_CLIENT, 401)
        redirect_uri = query.get("redirect_uri", "")
        if redirect_uri not in app.redirect_uris:
            return self._answer(
                {
                    "error": "invalid_redirect_uri",
                    "error_description": "The requested redirect uri is malformed or "
                    "doesn't match client redirect URI.",
                },
                400,
            )
        state = query.get("state")
        if query.get("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        scopes = set((query.get("scope") or SCOPE_DEFAULT).split())
        if not scopes <= _granted(app.scopes):
            return _redirect(redirect_uri, error="invalid_scope", state=state)
        challenge, method = query.get("code_challenge"), query.get("code_challenge_method")
        if challenge and method != "S256":
            return _redirect(redirect_uri, error="invalid_request", state=state)
        if self.authorize_decision != "approve":
            return _redirect(redirect_uri, error="access_denied", state=state)
        code = secrets.token_urlsafe(32)
        with self._lock:
            self.grants[code] = Grant(code, app.client_id, redirect_uri, scopes, self.signed_in, challenge, method)
        return _redirect(redirect_uri, code=code, state=state)

    async def _token(self, request: Request, recorded: Recorded) -> Response:
        params = self._params(recorded)
        client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        with self._lock:
            app = self.apps.get(client_id)
        if app is None or not secrets.compare_digest(app.client_secret, client_secret):
            return self._answer(INVALID_CLIENT, 401)
        if params.get("grant_type") != "authorization_code":
            return self._answer({"error": "unsupported_grant_type"}, 400)
        with self._lock:
            grant = self.grants.get(params.get("code", ""))
            usable = (
                grant is not None
                and not grant.used
                and grant.client_id == app.client_id
                and grant.redirect_uri == params.get("redirect_uri")
                and _pkce_matches(grant, params.get("code_verifier"))
            )
            if grant is not None:
                grant.used = True  # one use per code, even a failed one
            if not usable or grant is None:
                return self._answer(INVALID_GRANT, 400)
            value = f"tok_{secrets.token_urlsafe(32)}"
            self.tokens[value] = Token(value, app.client_id, grant.scopes, grant.username)
        return self._answer(
            {
                "access_token": value,
                "token_type": "Bearer",
                "scope": " ".join(sorted(grant.scopes)),
                "created_at": int(time.time()),
            }
        )

    async def _revoke(self, request: Request, recorded: Recorded) -> Response:
        params = self._params(recorded)
        with self._lock:
            app = self.apps.get(params.get("client_id", ""))
            token = self.tokens.get(params.get("token", ""))
            if app is not None and not secrets.compare_digest(app.client_secret, params.get("client_secret", "")):
                return self._answer(INVALID_CLIENT, 401)
            # RFC 7009: an unknown token is not an error.
            if token is not None and (app is None or token.client_id == app.client_id):
                token.revoked = True
        return self._answer({})

    # -- account and instance --

    def _account_json(self, account: Account) -> dict[str, Any]:
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.display_name,
            "url": self.account_url(account.username),
            "locked": False,
            "bot": False,
            "created_at": "2024-01-01T00:00:00.000Z",
        }

    async def _verify_credentials(self, request: Request, recorded: Recorded) -> Response:
        token = self._token_of(request, "read:accounts", "read", "profile")
        if isinstance(token, Response):
            return token
        return self._answer(self._account_json(self.accounts[token.username]))

    async def _instance_v2(self, request: Request, recorded: Recorded) -> Response:
        config = self.config
        if config.api_version < 2:
            return self._answer({"error": "Not Found"}, 404)
        return self._answer(
            {
                "domain": config.domain,
                "title": config.title,
                "version": "4.3.0",
                "source_url": "https://github.com/mastodon/mastodon",
                "configuration": {
                    "urls": {"streaming": "wss://mastodon.test"},
                    "accounts": {"max_featured_tags": 10},
                    "statuses": {
                        "max_characters": config.max_characters,
                        "max_media_attachments": config.max_media_attachments,
                        "characters_reserved_per_url": config.characters_reserved_per_url,
                    },
                    "media_attachments": {
                        "supported_mime_types": config.supported_mime_types,
                        "image_size_limit": config.image_size_limit,
                        "image_matrix_limit": 33177600,
                        "video_size_limit": 103809024,
                        "video_frame_rate_limit": 120,
                        "video_matrix_limit": 8294400,
                    },
                    "polls": {"max_options": 4},
                },
                "registrations": {"enabled": False, "approval_required": False},
                "rules": [],
            }
        )

    async def _instance_v1(self, request: Request, recorded: Recorded) -> Response:
        config = self.config
        return self._answer(
            {
                "uri": config.domain,
                "title": config.title,
                "version": "3.5.3",
                "max_toot_chars": config.max_characters,
                "configuration": {
                    "statuses": {
                        "max_characters": config.max_characters,
                        "max_media_attachments": config.max_media_attachments,
                        "characters_reserved_per_url": config.characters_reserved_per_url,
                    },
                    "media_attachments": {
                        "supported_mime_types": config.supported_mime_types,
                        "image_size_limit": config.image_size_limit,
                    },
                },
            }
        )

    # -- media --

    def _media_json(self, media: Media) -> dict[str, Any]:
        url = f"{self.base_url}/system/media_attachments/{media.id}/original/{media.filename}"
        return {
            "id": media.id,
            "type": "image" if media.mime_type.startswith("image/") else "video",
            "url": url if media.processed else None,
            "preview_url": f"{self.base_url}/system/media_attachments/{media.id}/small/{media.filename}",
            "remote_url": None,
            "text_url": None,
            "meta": {},
            "description": media.description,
            "blurhash": None,
        }

    async def _upload_media(self, request: Request, recorded: Recorded) -> Response:
        token = self._token_of(request, "write:media", "write")
        if isinstance(token, Response):
            return token
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return self._answer({"error": "Validation failed: File can't be blank"}, 422)
        data = await upload.read()
        mime_type = upload.content_type or "application/octet-stream"
        if mime_type not in self.config.supported_mime_types:
            return self._answer({"error": "Validation failed: File content type is invalid, File is invalid"}, 422)
        if len(data) > self.config.image_size_limit:
            megabytes = self.config.image_size_limit // (1024 * 1024)
            return self._answer({"error": f"Validation failed: File file size must be less than {megabytes} MB"}, 422)
        description = form.get("description")
        media = Media(
            id=self._next_id(),
            username=token.username,
            data=data,
            mime_type=mime_type,
            filename=upload.filename or "file",
            description=description if isinstance(description, str) else None,
            polls_left=self.processing_polls,
        )
        with self._lock:
            self.media[media.id] = media
        return self._answer(self._media_json(media), 200 if media.processed else 202)

    async def _media_status(self, request: Request, recorded: Recorded) -> Response:
        token = self._token_of(request, "write:media", "write")
        if isinstance(token, Response):
            return token
        with self._lock:
            media = self.media.get(request.path_params["media_id"])
            if media is None or media.username != token.username:
                return self._answer(NOT_FOUND, 404)
            if not media.processed:
                media.polls_left -= 1
                return self._answer(self._media_json(media) | {"url": None}, 206)
        return self._answer(self._media_json(media))

    # -- statuses --

    def counted_length(self, text: str) -> int:
        """The instance's own count: links as `characters_reserved_per_url`, `@user@domain` as `@user`, the rest in
        code points (Mastodon counts grapheme clusters; the same for the texts used here)."""
        placeholder = "x" * self.config.characters_reserved_per_url
        return len(MENTION.sub(r"@\1", URL.sub(placeholder, text)))

    def _status_json(self, status: Status) -> dict[str, Any]:
        account = self.accounts[status.username]
        return {
            "id": status.id,
            "created_at": status.created_at,
            "uri": f"{self.base_url}/users/{account.username}/statuses/{status.id}",
            "url": f"{self.account_url(account.username)}/{status.id}",
            "visibility": status.visibility,
            "content": f"<p>{status.text}</p>",
            "account": self._account_json(account),
            "media_attachments": [self._media_json(self.media[m]) for m in status.media_ids if m in self.media],
        }

    async def _post_status(self, request: Request, recorded: Recorded) -> Response:
        token = self._token_of(request, "write:statuses", "write")
        if isinstance(token, Response):
            return token
        params = self._params(recorded)
        key = request.headers.get("idempotency-key")
        with self._lock:
            if key and (token.username, key) in self.idempotent:
                self.duplicates += 1
                return self._answer(self._status_json(self.status_by_id(self.idempotent[token.username, key])))
        text = str(params.get("status") or "")
        media_ids = params.get("media_ids") or params.get("media_ids[]") or []
        media_ids = [str(m) for m in (media_ids if isinstance(media_ids, list) else [media_ids])]
        if not text.strip() and not media_ids:
            return self._answer({"error": "Validation failed: Text can't be blank"}, 422)
        limit = self.config.max_characters
        if self.counted_length(text) > limit:
            return self._answer({"error": f"Validation failed: Text character limit of {limit} exceeded"}, 422)
        if len(media_ids) > self.config.max_media_attachments:
            return self._answer({"error": f"Cannot attach more than {self.config.max_media_attachments} files"}, 422)
        with self._lock:
            attachments = [self.media.get(m) for m in media_ids]
            if any(m is None or m.username != token.username or m.attached_to for m in attachments):
                return self._answer({"error": "Validation failed: Media attachments are invalid"}, 422)
            if not all(m is not None and m.processed for m in attachments):
                return self._answer({"error": NOT_PROCESSED}, 422)
            status = Status(
                id=self._next_id(),
                username=token.username,
                text=text,
                visibility=str(params.get("visibility") or "public"),
                media_ids=media_ids,
                idempotency_key=key,
                created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            )
            for media in attachments:
                if media is not None:
                    media.attached_to = status.id
            self.statuses.append(status)
            if key:
                self.idempotent[token.username, key] = status.id
        return self._answer(self._status_json(status))


def _granted(scopes: set[str]) -> set[str]:
    """The scopes an app registered with, with the fine scopes its broad ones hold (`write` holds `write:media`)."""
    fine = {
        "read": {"read:accounts", "read:statuses"},
        "write": {"write:statuses", "write:media"},
    }
    return scopes | {s for broad in scopes for s in fine.get(broad, set())}


def _pkce_matches(grant: Grant, verifier: Any) -> bool:
    if grant.code_challenge is None:
        return True
    if not isinstance(verifier, str) or not verifier:
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(expected, grant.code_challenge)


def _redirect(redirect_uri: str, **params: str | None) -> Response:
    """302 to the client's redirect URI with `params` added to its query."""
    parts = urlsplit(redirect_uri)
    query = parse_qsl(parts.query) + [(k, v) for k, v in params.items() if v is not None]
    return RedirectResponse(urlunsplit(parts._replace(query=urlencode(query))), status_code=302)


# ---- For tests driving the authorize step --------------------------------------------------------------------


async def follow_authorization(url: str) -> str:
    """What a person's browser does at the authorization URL: GET it and return where the instance redirects
    (the app's redirect URI with `code` and `state`, or with `error`). Not followed further."""
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=30) as client:
        response = await client.get(url)
    if response.status_code != 302:
        raise AssertionError(f"the authorize step answered {response.status_code}: {response.text}")
    return response.headers["location"]


def query_of(url: str) -> dict[str, str]:
    """The query parameters of a redirect, for `code`, `state` and `error`."""
    return dict(parse_qsl(urlsplit(url).query))
