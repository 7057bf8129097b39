"""An APIRouter that answers with and without the trailing slash, without redirects (POSTs must not bounce)."""

from typing import Any

from fastapi import APIRouter


class SlashRouter(APIRouter):
    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        super().add_api_route(path, endpoint, **kwargs)
        alternate = path[:-1] if path.endswith("/") else path + "/"
        if alternate and alternate != path:
            kwargs = {**kwargs, "include_in_schema": False}
            kwargs.pop("operation_id", None)
            super().add_api_route(alternate, endpoint, **kwargs)
