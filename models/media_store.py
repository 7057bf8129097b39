"""Where generated media lives on disk: a path per asset under the media store, relative in the DB row."""

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
