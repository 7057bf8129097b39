"""Where generated media lives on disk: a path per asset under the media store, relative in the DB row."""

import hashlib
import hmac
import time
import uuid
from pathlib import Path, PurePosixPath

from models.settings import Settings
from models.tables import MediaAsset

# Known media types get their usual extension; anything else is stored as .bin rather than guessed.
EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
}


def extension_for(mime_type: str) -> str:
    return EXTENSIONS.get(mime_type.split(";", 1)[0].strip().lower(), "bin")


def media_path(tenant_id: uuid.UUID, asset_id: uuid.UUID, mime_type: str) -> str:
    """The asset's path relative to the media store, as stored in `MediaAsset.path`: `<tenant>/<asset>.<ext>`."""
    return str(PurePosixPath(str(tenant_id), f"{asset_id}.{extension_for(mime_type)}"))


def media_root(settings: Settings) -> Path:
    return settings.resolved_media_dir.resolve()


def resolve_media_path(root: Path, relative: str) -> Path:
    """The absolute file for a stored relative path; refuses anything that would leave the store."""
    root = root.resolve()
    target = (root / relative).resolve()
    if not relative or PurePosixPath(relative).is_absolute() or not target.is_relative_to(root):
        raise ValueError(f"media path {relative!r} is outside the media store")
    return target


def media_file(settings: Settings, asset: MediaAsset) -> Path:
    """The file of a media asset (for serving downloads); it may be missing if the store was wiped."""
    return resolve_media_path(media_root(settings), asset.path)


# ---- links a webhook receiver can download without an API key -------------------------------------------------

MEDIA_LINK_TTL_SECONDS = 14 * 24 * 3600  # long enough for a receiver that fetches at publish time or a bit later


def media_link_signature(secret: str, asset_id: uuid.UUID, expires: int) -> str:
    """HMAC-SHA256 with the tenant's webhook secret: the receiver already trusts it, and rotating it revokes links."""
    return hmac.new(secret.encode(), f"{asset_id}.{expires}".encode(), hashlib.sha256).hexdigest()


def signed_media_url(base_url: str, asset_id: uuid.UUID, secret: str, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + MEDIA_LINK_TTL_SECONDS)
    signature = media_link_signature(secret, asset_id, expires)
    return f"{base_url.rstrip('/')}/api/v1/media/{asset_id}/file?expires={expires}&signature={signature}"


def media_link_valid(secret: str, asset_id: uuid.UUID, expires: int, signature: str, now: float | None = None) -> bool:
    if expires < (now if now is not None else time.time()):
        return False
    return hmac.compare_digest(media_link_signature(secret, asset_id, expires), signature)
