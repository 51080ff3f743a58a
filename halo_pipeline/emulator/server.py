"""The emulator's HTTP server: the Halo Waypoint API paths spnkr calls, as the redirect middleware
(:mod:`halo_pipeline.api.redirect`) produces them (``/<service>/<path>``), served from a recordings
directory, a synthetic world, or both.

Behaviour shared by every API route:

* ``x-343-authorization-spartan`` header missing or empty → 401 (the film blob host is public: no check);
* ``latency_ms`` → sleep that long before answering;
* ``rate_limit`` R → a token bucket per service (capacity ``max(1, R)``, refilled at R tokens/s): a request
  finding no token is answered 429 with ``Retry-After`` (whole seconds, ≥ 1) and does not consume a token;
* unknown ids → 404, bad parameters → 400;
* images (:mod:`halo_pipeline.emulator.images`): the medal sprite sheets the medal metadata names
  (``/hi/Waypoint/file/{path}``), the career rank track and its icons (``/hi/images/file/{path}``), and the UGC
  files a UGC body lists (``…/ugcstorage/<kind>/<asset>/<version>/images/….png``) are PNGs the emulator makes;
* a player is named by ``xuid(…)`` or by gamertag (``/hi/players/{gamertag}/matches``, ``/users/gt(…)``), as
  the real API takes both;
* ``faults`` (a spec, see :mod:`halo_pipeline.emulator.faults`): 429 bursts, token expiry (401), 5xx, hangs,
  truncated or malformed bodies, unknown enum values, unreadable film chunks, expired matches (404) — in that
  order after the authentication and rate-limit checks. :meth:`Emulator.set_faults` swaps them at run time.

Counters (``GET /_emulator/stats``, :meth:`Emulator.counts`): ``requests`` by route kind and ``by_service``
count every request that passed authentication and the rate limit (404s and injected faults included);
``rate_limited`` counts 429s and ``unauthorized`` 401s (injected ones too); ``faults`` counts injected faults
by kind. ``POST /_emulator/reset`` zeroes them and refills the buckets.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from halo_pipeline.emulator import images
from halo_pipeline.emulator.faults import FaultInjector, FaultPlan
from halo_pipeline.emulator.recordings import RecordingStore
from halo_pipeline.emulator.synthetic import SyntheticWorld
from halo_pipeline.emulator.wire import (
    ApiSource,
    BadRequest,
    HistoryItem,
    history_page,
    parse_xuid_text,
)

AUTH_HEADER = "x-343-authorization-spartan"
TRAFFIC_KEY: web.AppKey[_Traffic] = web.AppKey("traffic")
FAULTS_KEY: web.AppKey[FaultInjector] = web.AppKey("faults")
PUBLIC_SERVICES = frozenset({"blobs-infiniteugc"})
UGC_KINDS = ("maps", "mapModePairs", "playlists", "ugcGameVariants")
#: The blob-storage folder of each UGC kind (``Files.Prefix`` = ``…/ugcstorage/<folder>/<asset>/<version>/``).
UGC_FOLDERS = {"map": "maps", "mapmodepair": "mapModePairs", "playlist": "playlists",
               "ugcgamevariant": "ugcGameVariants"}


class CombinedSource:
    """Several sources answered as one: the first that knows a thing answers; histories are merged
    (deduplicated by match id); medal metadata is the first source's, extended with medals only later
    sources define."""

    def __init__(self, sources: list[ApiSource]) -> None:
        self.sources = sources

    def _first(self, method: str, *args: Any) -> Any:
        for source in self.sources:
            found = getattr(source, method)(*args)
            if found is not None:
                return found
        return None

    def match_stats_body(self, match_id: str) -> bytes | None:
        return self._first("match_stats_body", match_id)

    def history_items(self, xuid: int) -> list[HistoryItem]:
        seen: dict[str, HistoryItem] = {}
        for source in self.sources:
            for item in source.history_items(xuid):
                seen.setdefault(item.match_id, item)
        return list(seen.values())

    def resolve_gamertag(self, gamertag: str) -> int | None:
        return self._first("resolve_gamertag", gamertag)

    def match_skill(self, match_id: str, xuids: list[int]) -> dict[str, Any] | None:
        return self._first("match_skill", match_id, xuids)

    def medal_metadata(self) -> dict[str, Any] | None:
        bodies = [b for b in (s.medal_metadata() for s in self.sources) if b is not None]
        if not bodies:
            return None
        merged = dict(bodies[0])
        known = {m["nameId"] for m in merged["medals"]}
        extra = [m for body in bodies[1:] for m in body["medals"] if m["nameId"] not in known]
        merged["medals"] = list(merged["medals"]) + extra
        return merged

    def ugc_body(self, kind: str, asset_id: str, version_id: str) -> bytes | None:
        return self._first("ugc_body", kind, asset_id, version_id)

    def film_manifest(self, match_id: str) -> dict[str, Any] | None:
        return self._first("film_manifest", match_id)

    def film_chunk(self, asset_id: str, match_id: str, name: str) -> bytes | None:
        return self._first("film_chunk", asset_id, match_id, name)

    def user(self, xuid: int) -> dict[str, Any] | None:
        return self._first("user", xuid)

    def customization(self, xuid: int) -> dict[str, Any] | None:
        return self._first("customization", xuid)

    def career_rank(self, xuid: int) -> dict[str, Any] | None:
        return self._first("career_rank", xuid)

    def career_track(self) -> dict[str, Any] | None:
        return self._first("career_track")


class _Traffic:
    """Counters and per-service token buckets; shared between the server thread and callers."""

    def __init__(self, rate_limit: float | None) -> None:
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError(f"rate_limit must be > 0 requests/s, got {rate_limit}")
        self.rate_limit = rate_limit
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: Counter = Counter()
            self.by_service: Counter = Counter()
            self.rate_limited = 0
            self.unauthorized = 0
            self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, service: str) -> int | None:
        """Take a token of ``service``; ``None`` when granted, else the Retry-After in seconds."""
        if self.rate_limit is None:
            return None
        rate, capacity, now = self.rate_limit, max(1.0, self.rate_limit), time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(service, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[service] = (tokens - 1.0, now)
                return None
            self._buckets[service] = (tokens, now)
            self.rate_limited += 1
            return max(1, math.ceil((1.0 - tokens) / rate))

    def count(self, kind: str, service: str) -> None:
        with self._lock:
            self.requests[kind] += 1
            self.by_service[service] += 1

    def count_unauthorized(self) -> None:
        with self._lock:
            self.unauthorized += 1

    def count_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": dict(self.requests), "by_service": dict(self.by_service),
                    "rate_limited": self.rate_limited, "unauthorized": self.unauthorized}


def _json(body: Any, status: int = 200) -> web.Response:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return web.Response(body=raw, status=status, content_type="application/json")


def _not_found(what: str) -> web.Response:
    return _json({"error": f"not found: {what}"}, status=404)


def make_app(source: ApiSource, latency_ms: float = 0.0, rate_limit: float | None = None,
             faults: FaultPlan | str | None = None) -> web.Application:
    """The aiohttp application serving ``source``.

    Args:
        source: a :class:`RecordingStore`, a :class:`SyntheticWorld` or a :class:`CombinedSource`.
        latency_ms: delay before every API answer, in milliseconds.
        rate_limit: requests per second allowed per service (``None``: unlimited).
        faults: a fault spec or plan (:mod:`halo_pipeline.emulator.faults`); ``None``: no fault.

    The app's :data:`TRAFFIC_KEY` holds the counters (see the module docstring), :data:`FAULTS_KEY` the
    fault injector.

    Raises:
        halo_pipeline.ids.InvalidInput: an invalid fault spec.
    """
    traffic = _Traffic(rate_limit)
    injector = FaultInjector(faults)

    @web.middleware
    async def api_guard(request: web.Request, handler):
        if request.path.startswith("/_emulator/"):
            return await handler(request)
        if latency_ms > 0:
            await asyncio.sleep(latency_ms / 1000)
        segments = [s for s in request.path.split("/") if s]
        service = segments[0] if segments else ""
        route = request.match_info.route
        kind = route.name if route is not None and route.name else "unknown"
        token = request.headers.get(AUTH_HEADER, "").strip()
        if service not in PUBLIC_SERVICES and not token:
            traffic.count_unauthorized()
            return web.Response(status=401)
        if service not in PUBLIC_SERVICES and injector.active and injector.token_expired(kind, request.path, token):
            traffic.count_unauthorized()
            return web.Response(status=401, headers={"WWW-Authenticate": 'Spartan error="token expired"'})
        retry_after = traffic.take(service)
        if retry_after is not None:
            return web.Response(status=429, headers={"Retry-After": str(retry_after)})
        match_id = request.match_info.get("match_id")
        if injector.active:
            fault = injector.before(kind, request.path_qs, match_id)
            if isinstance(fault, tuple):
                status, headers = fault
                if status == 429:
                    traffic.count_rate_limited()
                    return web.Response(status=429, headers=headers)
                traffic.count(kind, service)
                return _json({"error": f"injected fault: HTTP {status}"}, status=status)
            if isinstance(fault, float):
                await asyncio.sleep(fault)
        traffic.count(kind, service)
        try:
            response = await handler(request)
        except BadRequest as exc:
            return _json({"error": str(exc)}, status=400)
        if injector.active and response.status == 200 and isinstance(response, web.Response) and response.body:
            body = bytes(response.body)
            faulty = injector.after(kind, request.path_qs, match_id, body)
            if faulty is not body:
                return web.Response(body=faulty, status=200, content_type=response.content_type)
        return response

    def resolve_player(text: str) -> int | None:
        xuid = parse_xuid_text(text)
        return xuid if xuid is not None else source.resolve_gamertag(text)

    def int_param(request: web.Request, name: str, default: int) -> int:
        value = request.query.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"{name} must be an integer, got {value!r}") from None

    async def match_history(request: web.Request) -> web.Response:
        player = request.match_info["player"]
        xuid = resolve_player(player)
        if xuid is None:
            return _not_found(f"player {player}")
        page = history_page(source.history_items(xuid), int_param(request, "start", 0),
                            int_param(request, "count", 25), request.query.get("type", "all"))
        return _json(page)

    async def match_stats(request: web.Request) -> web.Response:
        body = source.match_stats_body(request.match_info["match_id"])
        return _json(body) if body is not None else _not_found("match")

    async def match_skill(request: web.Request) -> web.Response:
        players = [p for value in request.query.getall("players", []) for p in value.split(",") if p.strip()]
        xuids = [parse_xuid_text(p) for p in players]
        if not xuids or any(x is None for x in xuids):
            raise BadRequest("players must be one or more xuid(…) values")
        body = source.match_skill(request.match_info["match_id"], xuids)
        return _json(body) if body is not None else _not_found("match skill")

    async def medal_metadata(request: web.Request) -> web.Response:
        body = source.medal_metadata()
        return _json(body) if body is not None else _not_found("medal metadata")

    def ugc_handler(kind: str):
        async def handler(request: web.Request) -> web.Response:
            body = source.ugc_body(kind, request.match_info["asset_id"], request.match_info["version_id"])
            return _json(body) if body is not None else _not_found(f"{kind} asset")

        return handler

    async def film_manifest(request: web.Request) -> web.Response:
        body = source.film_manifest(request.match_info["match_id"])
        return _json(body) if body is not None else _not_found("film")

    async def film_chunk(request: web.Request) -> web.Response:
        info = request.match_info
        data = source.film_chunk(info["asset_id"], info["match_id"], info["name"])
        if data is None:
            return _not_found("film chunk")
        return web.Response(body=data, content_type="application/octet-stream")

    async def users(request: web.Request) -> web.Response:
        values = [v for value in request.query.getall("xuids", []) for v in value.split(",") if v.strip()]
        xuids = [parse_xuid_text(v) for v in values]
        if not xuids or any(x is None for x in xuids):
            raise BadRequest("xuids must be one or more xuids")
        found = [u for u in (source.user(x) for x in dict.fromkeys(xuids)) if u is not None]
        return _json(found) if found else _not_found("users")

    async def user(request: web.Request) -> web.Response:
        text = request.match_info["user"].strip()
        if text.lower().startswith("gt(") and text.endswith(")"):
            xuid = source.resolve_gamertag(text[3:-1])
        else:
            xuid = parse_xuid_text(text)
        body = source.user(xuid) if xuid is not None else None
        return _json(body) if body is not None else _not_found(f"user {text}")

    def economy_handler(method: str):
        async def handler(request: web.Request) -> web.Response:
            player = request.match_info["player"]
            xuid = parse_xuid_text(player)
            if xuid is None:
                raise BadRequest(f"player must be xuid(…), got {player!r}")
            if method == "career_rank" and request.match_info["track"].lower() != "careerrank1":
                return _not_found(f"career track {request.match_info['track']}")
            body = getattr(source, method)(xuid)
            return _json(body) if body is not None else _not_found(f"{method} of {player}")

        return handler

    async def career_track(request: web.Request) -> web.Response:
        body = source.career_track()
        return _json(body) if body is not None else _not_found("career track")

    # ---- images: made by the emulator (halo_pipeline.emulator.images) for the paths the API names ----
    def _png(data: bytes | None, what: str) -> web.Response:
        return web.Response(body=data, content_type="image/png") if data is not None else _not_found(what)

    async def waypoint_file(request: web.Request) -> web.Response:
        metadata = source.medal_metadata()
        path = request.match_info["path"]
        return _png(images.medal_sheet(metadata, path) if metadata else None, f"file {path}")

    async def gamecms_image(request: web.Request) -> web.Response:
        path = request.match_info["path"]
        return _png(images.career_icon(path), f"image {path}")

    async def ugc_file(request: web.Request) -> web.Response:
        info = request.match_info
        body = source.ugc_body(UGC_FOLDERS[info["folder"].lower()], info["asset_id"], info["version_id"])
        files = (orjson.loads(body).get("Files") or {}).get("FileRelativePaths") or [] if body else []
        name = info["file"]
        found = name in files and name.lower().endswith(".png")
        return _png(images.ugc_image(f"{info['asset_id']}/{info['version_id']}/{name}") if found else None,
                    f"ugc file {name}")

    async def stats(request: web.Request) -> web.Response:
        return _json(traffic.snapshot() | {"faults": injector.snapshot()["injected"]})

    async def reset(request: web.Request) -> web.Response:
        traffic.reset()
        return _json(traffic.snapshot())

    app = web.Application(middlewares=[api_guard])
    app[TRAFFIC_KEY] = traffic
    app[FAULTS_KEY] = injector
    routes = [
        web.get("/halostats/hi/players/{player}/matches", match_history, name="match_history"),
        web.get("/halostats/hi/matches/{match_id}/stats", match_stats, name="match_stats"),
        web.get("/skill/hi/matches/{match_id}/skill", match_skill, name="match_skill"),
        web.get("/gamecms-hacs/hi/Waypoint/file/medals/metadata.json", medal_metadata, name="medal_metadata"),
        web.get("/discovery-infiniteugc/hi/films/matches/{match_id}/spectate", film_manifest, name="film_manifest"),
        web.get("/blobs-infiniteugc/ugcstorage/film/{asset_id}/{match_id}/{name}", film_chunk, name="film_chunk"),
        web.get("/gamecms-hacs/hi/Waypoint/file/{path:.+}", waypoint_file, name="medal_sheet"),
        web.get("/gamecms-hacs/hi/images/file/{path:.+}", gamecms_image, name="career_icon"),
        web.get("/blobs-infiniteugc/ugcstorage/{folder:(?i:map|mapmodepair|playlist|ugcgamevariant)}/{asset_id}/"
                "{version_id}/{file:.+}", ugc_file, name="ugc_image"),
        web.get("/profile/users", users, name="users"),
        web.get("/profile/users/{user}", user, name="user"),
        web.get("/economy/hi/players/{player}/customization", economy_handler("customization"), name="customization"),
        web.get("/economy/hi/players/{player}/rewardtracks/careerranks/{track}", economy_handler("career_rank"),
                name="career_rank"),
        web.get("/gamecms-hacs/hi/Progression/file/RewardTracks/CareerRanks/careerRank1.json", career_track,
                name="career_track"),
        web.get("/_emulator/stats", stats, name="emulator_stats"),
        web.post("/_emulator/reset", reset, name="emulator_reset"),
    ]
    for kind in UGC_KINDS:
        routes.append(web.get(f"/discovery-infiniteugc/hi/{kind}/{{asset_id}}/versions/{{version_id}}",
                              ugc_handler(kind), name=kind))
    app.add_routes(routes)
    return app


class Emulator:
    """The emulator, startable in-process (background thread with its own event loop) or blocking.

    Args:
        recordings: a recordings directory (see :mod:`halo_pipeline.emulator.recordings`) or a loaded
            :class:`RecordingStore`.
        synthetic: a synthetic world; with ``recordings`` too, both are served (recordings answer first).
        latency_ms: delay before every API answer, in milliseconds.
        rate_limit: requests/s per service before 429 (``None``: unlimited).
        faults: a fault spec (:mod:`halo_pipeline.emulator.faults`), e.g. ``"5xx:rate=0.05;seed=1"``.
        host: interface to bind; loopback by default.
        port: 0 picks a free port (see :attr:`url` once started).

    Raises:
        ValueError: neither ``recordings`` nor ``synthetic`` given (or an invalid fault spec:
            :class:`halo_pipeline.ids.InvalidInput`).

    Example::

        with Emulator(synthetic=SyntheticWorld(42)) as emu:
            session = aiohttp.ClientSession(middlewares=(redirect_middleware(emu.url),))
    """

    def __init__(self, recordings: Path | str | RecordingStore | None = None, synthetic: SyntheticWorld | None = None,
                 latency_ms: float = 0.0, rate_limit: float | None = None, host: str = "127.0.0.1",
                 port: int = 0, faults: FaultPlan | str | None = None) -> None:
        if recordings is None and synthetic is None:
            raise ValueError("the emulator needs recordings, a synthetic world, or both")
        if isinstance(recordings, (str, Path)):
            recordings = RecordingStore.from_directory(recordings)
        self.store: RecordingStore | None = recordings
        self.world: SyntheticWorld | None = synthetic
        sources: list[ApiSource] = [s for s in (recordings, synthetic) if s is not None]
        self.source: ApiSource = sources[0] if len(sources) == 1 else CombinedSource(sources)
        self.app = make_app(self.source, latency_ms=latency_ms, rate_limit=rate_limit, faults=faults)
        self.host, self.port = host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (valid once started)."""
        return f"http://{self.host}:{self.port}"

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> Emulator:
        """Serve from a background thread; returns once the server listens.

        Raises:
            RuntimeError: already started, or the server failed to start (the cause is chained).
        """
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # noqa: BLE001 - reported to the caller of start()
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="halo-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise RuntimeError(f"emulator failed to start on {self.host}:{self.port}") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (no-op when not started)."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def counts(self) -> dict[str, Any]:
        """``{"requests": {kind: n}, "by_service": {service: n}, "rate_limited": n, "unauthorized": n,
        "faults": {kind: n}}``."""
        return self.app[TRAFFIC_KEY].snapshot() | {"faults": self.app[FAULTS_KEY].snapshot()["injected"]}

    def set_faults(self, faults: FaultPlan | str | None) -> None:
        """Replace the fault plan (``None``: no fault from now on); fault counters restart."""
        self.app[FAULTS_KEY].set_plan(faults)

    def fault_log(self) -> list[tuple[str, str, str]]:
        """Every fault injected since the plan was set: ``(kind, route, path and query)``."""
        return self.app[FAULTS_KEY].snapshot()["log"]

    def reset_counts(self) -> None:
        """Zero the counters and refill the rate-limit buckets."""
        self.app[TRAFFIC_KEY].reset()

    def run_forever(self) -> None:
        """Serve in the calling thread until interrupted (Ctrl-C / SIGTERM kill); prints one line with the
        URL once listening."""

        async def main() -> None:
            await self._start_site()
            print(f"halo emulator listening on {self.url}", flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await self._runner.cleanup()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            pass


def serve(recordings: Path | None, synthetic_players: int, seed: int, port: int, latency_ms: float,
          rate_limit: float | None, months: int = 6, matches_per_month: int = 30, faults: str | None = None) -> None:
    """Run the emulator until killed (the ``halo-pipeline emulator`` command).

    Args:
        recordings: recordings directory, or ``None``.
        synthetic_players: registered synthetic players (0: none).
        seed: synthetic world seed.
        port: TCP port on 127.0.0.1 (0: any free port; the printed URL tells which).
        latency_ms: delay before every answer, milliseconds.
        rate_limit: requests/s per service before 429, or ``None``.
        months: months of synthetic history, ending June 2025.
        matches_per_month: synthetic matches per month across the world.
        faults: a fault spec (:mod:`halo_pipeline.emulator.faults`), or ``None``.

    Raises:
        ValueError: neither recordings nor synthetic players; an invalid fault spec or a corrupt recording
            (:class:`halo_pipeline.ids.InvalidInput`, one line).
    """
    world = (SyntheticWorld(seed, players=synthetic_players, months=months, matches_per_month=matches_per_month)
             if synthetic_players > 0 else None)
    Emulator(recordings=recordings, synthetic=world, latency_ms=latency_ms, rate_limit=rate_limit,
             port=port, faults=faults).run_forever()
