"""Redirect spnkr's hard-coded ``https://*.halowaypoint.com`` hosts to another base URL.

spnkr has no base-URL setting; an aiohttp client middleware (aiohttp ≥ 3.12) rewrites each request's URL
before it is sent, so the code path is exactly the live one. The film blob host is covered as well.
"""

from __future__ import annotations

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from yarl import URL

HALO_HOST_SUFFIX = ".halowaypoint.com"


def service_of(url: URL) -> str:
    """The API service a URL belongs to: the first label of its host (``halostats``, ``skill``,
    ``discovery-infiniteugc``, ``gamecms-hacs``, ``profile``, ``blobs-infiniteugc``…).

    For a redirected URL (``http://127.0.0.1:P/<service>/…``) it is the first path segment.
    """
    host = url.host or ""
    if host.endswith(HALO_HOST_SUFFIX):
        return host.split(".", 1)[0]
    parts = [p for p in url.path.split("/") if p]
    return parts[0] if parts else host


def redirected(url: URL, base: URL) -> URL:
    """Map ``https://<service>.svc.halowaypoint.com/<path>`` to ``<base>/<service>/<path>``.

    URLs of other hosts are returned unchanged.
    """
    host = url.host or ""
    if not host.endswith(HALO_HOST_SUFFIX):
        return url
    service = host.split(".", 1)[0]
    path = base.path.rstrip("/") + f"/{service}" + url.raw_path
    return base.with_path(path, encoded=True).with_query(url.raw_query_string)


def redirect_middleware(base_url: str):
    """An aiohttp client middleware sending Halo Waypoint requests to ``base_url`` (e.g. the emulator)."""
    base = URL(base_url)

    async def middleware(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        request.url = redirected(request.url, base)
        return await handler(request)

    return middleware
