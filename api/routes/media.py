"""Downloads of generated images and videos: with an API key of the tenant, or with a signed link from a webhook."""

import uuid
from typing import Annotated

from fastapi import Depends, Query
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials

from api.deps import SessionDep, SettingsDep, authenticate, bearer, require
from api.errors import PROBLEMS, Problem, not_found
from api.routing import SlashRouter
from models.enums import Role
from models.media_store import media_file, media_link_valid
from models.tables import MediaAsset, Tenant

router = SlashRouter(prefix="/media", tags=["media"])


@router.get(
    "/{media_id}/file",
    response_class=FileResponse,
    responses={200: {"description": "the file", "content": {"image/png": {}, "video/mp4": {}}}, **PROBLEMS},
    summary="Download a media file (API key, or the signed link a webhook delivery carries)",
)
async def download_media(
    media_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    expires: Annotated[int | None, Query(ge=0, le=2**40, description="signed link: expiry, unix seconds")] = None,
    signature: Annotated[str | None, Query(max_length=128, description="signed link: HMAC-SHA256")] = None,
) -> FileResponse:
    asset = await session.get(MediaAsset, media_id)
    if expires is not None and signature is not None and credentials is None:
        tenant = await session.get(Tenant, asset.tenant_id) if asset else None
        secret = tenant.webhook_secret if tenant else None
        if asset is None or not secret or not media_link_valid(secret, asset.id, expires, signature):
            raise Problem(403, "the link is not valid or has expired")
    else:
        principal = await require(Role.MARKETER)(await authenticate(session, credentials))
        if asset is None or asset.tenant_id != principal.tenant_id:
            raise not_found("the media file")
    try:
        path = media_file(settings, asset)
    except ValueError:
        raise not_found("the media file") from None
    if not path.is_file():
        raise Problem(410, "the media file is no longer in the media store")
    return FileResponse(path, media_type=asset.mime_type, filename=path.name)
