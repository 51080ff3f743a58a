"""Fault injection for the emulator: what can go wrong between the pipeline and the Halo API, on demand.

A **fault spec** is a string (``halo-pipeline emulator --faults SPEC``, ``Emulator(faults=SPEC)``)::

    spec   := item ( ";" item )*
    item   := "seed=" INT  |  KIND [ ":" param ( "," param )* ]
    param  := NAME "=" VALUE           (lists, e.g. ``on`` and ``codes``, are joined with "+")

    e.g.  "429:burst=5,every=40;401:after=30;5xx:rate=0.05;hang:rate=0.01,seconds=5;truncate:rate=0.02;
           malformed:rate=0.02;enum:rate=0.05;film_bad:rate=0.1;expired:rate=0.02;seed=1"

=========  ==========================================================  =====================================
kind       what the emulator does                                      parameters (default)
=========  ==========================================================  =====================================
429        every ``every``-th API request starts a burst: it and the   ``burst`` (5), ``every`` (40),
           next ``burst - 1`` requests are answered 429 +              ``retry_after`` seconds (1)
           ``Retry-After``
401        a spartan token expires after ``after`` requests: every     ``after`` (30)
           later request carrying it is answered 401. A *different*
           token value (a refreshed token) is accepted and gets a
           fresh lifetime of ``after`` requests
5xx        answer one of ``codes`` instead of the body                 ``rate``, ``codes`` (500+502+503)
hang       sleep ``seconds`` before answering (past the client's       ``rate``, ``seconds`` (30)
           timeout)
truncate   200 with the body cut short (Content-Length matches the     ``rate``, ``on`` (match_stats+
           cut body: only parsing can tell)                            match_skill)
malformed  200 with a body that is not JSON (an HTML error page)       ``rate``, ``on`` (match_stats+
                                                                       match_skill)
enum       the stats body carries an unknown enum value                ``rate``, ``value`` (99)
           (``MatchInfo.PlaylistExperience``): spnkr's models reject
           it, the pipeline must keep the body and derive the rest
film_bad   the film highlight chunk is cut in half (not readable)      ``rate``
expired    404 for the match's stats (an expired match)                ``rate``
=========  ==========================================================  =====================================

Every kind takes ``on=ROUTE+ROUTE…`` (route names of :mod:`halo_pipeline.emulator.server`: match_history,
match_stats, match_skill, film_manifest, film_chunk, users, user, medal_metadata, maps, mapModePairs,
playlists, ugcGameVariants, medal_sheet, career_track, career_icon, ugc_image; ``all``: every API route).
Defaults: 429/5xx/hang on every route, 401 on every authenticated route, enum and expired on match_stats,
film_bad on film_chunk.

**Deterministic by seed.** A rate fault is decided by a hash of (seed, kind, request path and query, how many
times that path was asked before), so the same requests meet the same faults whatever the concurrency, and a
retry of a request is a new draw (the fault is transient). ``enum`` and ``expired`` are properties of a
*match* (hash of seed, kind and match id): the same matches are affected on every request while the fault is
on. ``enum`` models the API's *data* (a new enum value), not a transport failure. Bursts and token expiry
follow the request count.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from halo_pipeline.ids import InvalidInput

ROUTES = frozenset({
    "match_history", "match_stats", "match_skill", "film_manifest", "film_chunk", "users", "user",
    "medal_metadata", "maps", "mapModePairs", "playlists", "ugcGameVariants",
    "medal_sheet", "career_track", "career_icon", "ugc_image",  # the images the emulator makes
})

Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on: frozenset[str] = frozenset({"all"})

    @field_validator("on", mode="before")
    @classmethod
    def _routes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = frozenset(v.strip() for v in value.split("+") if v.strip())
        unknown = set(value) - ROUTES - {"all"}
        if unknown:
            raise ValueError(f"unknown route(s) {', '.join(sorted(unknown))}; known: all, {', '.join(sorted(ROUTES))}")
        return value

    def applies(self, route: str) -> bool:
        return "all" in self.on or route in self.on


class Burst429(_Fault):
    """Bursts of 429 + Retry-After."""

    burst: int = Field(default=5, ge=1)
    every: int = Field(default=40, ge=1)
    retry_after: int = Field(default=1, ge=0)


class TokenExpiry(_Fault):
    """401 after ``after`` requests with the same token."""

    after: int = Field(default=30, ge=0)


class ServerErrors(_Fault):
    """500/502/503 at a rate."""

    rate: Rate = 0.05
    codes: tuple[int, ...] = (500, 502, 503)

    @field_validator("codes", mode="before")
    @classmethod
    def _codes(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = tuple(int(v) for v in value.split("+") if v.strip())
        if not value or any(not 500 <= int(c) <= 599 for c in value):
            raise ValueError("codes must be 5xx statuses joined with '+', e.g. 500+503")
        return value


class Hang(_Fault):
    """Answer after ``seconds`` (past the client timeout)."""

    rate: Rate = 0.01
    seconds: float = Field(default=30.0, gt=0)


class Truncate(_Fault):
    rate: Rate = 0.02
    on: frozenset[str] = frozenset({"match_stats", "match_skill"})


class Malformed(_Fault):
    rate: Rate = 0.02
    on: frozenset[str] = frozenset({"match_stats", "match_skill"})


class UnknownEnum(_Fault):
    rate: Rate = 0.05
    value: int = 99
    on: frozenset[str] = frozenset({"match_stats"})


class FilmBad(_Fault):
    rate: Rate = 0.1
    on: frozenset[str] = frozenset({"film_chunk"})


class Expired(_Fault):
    rate: Rate = 0.02
    on: frozenset[str] = frozenset({"match_stats"})


_KINDS: dict[str, type[_Fault]] = {
    "429": Burst429, "401": TokenExpiry, "5xx": ServerErrors, "hang": Hang, "truncate": Truncate,
    "malformed": Malformed, "enum": UnknownEnum, "film_bad": FilmBad, "expired": Expired,
}
KINDS = tuple(_KINDS)


class FaultPlan(BaseModel):
    """A parsed fault spec: at most one entry per kind, and the seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    faults: dict[Literal["429", "401", "5xx", "hang", "truncate", "malformed", "enum", "film_bad", "expired"],
                 _Fault] = Field(default_factory=dict)

    def get(self, kind: str) -> Any:
        return self.faults.get(kind)  # type: ignore[call-overload]

    def only(self, *kinds: str) -> FaultPlan:
        """The same plan restricted to ``kinds`` (e.g. ``only("enum")``: the data faults, no transport ones)."""
        return FaultPlan(seed=self.seed, faults={k: v for k, v in self.faults.items() if k in kinds})


def parse_faults(spec: str | None) -> FaultPlan:
    """Parse a fault spec (grammar in the module docstring); ``None`` or empty → no fault.

    Raises:
        InvalidInput: one line naming the item and what is wrong with it.
    """
    plan: dict[str, Any] = {"seed": 0, "faults": {}}
    for raw in (spec or "").split(";"):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("seed="):
            try:
                plan["seed"] = int(item[5:])
            except ValueError:
                raise InvalidInput(f"invalid fault spec item {item!r}: seed must be an integer") from None
            continue
        kind, _, params_text = item.partition(":")
        kind = kind.strip()
        if kind not in _KINDS:
            raise InvalidInput(f"invalid fault spec item {item!r}: unknown fault {kind!r}; "
                               f"known: {', '.join(KINDS)}")
        if kind in plan["faults"]:
            raise InvalidInput(f"invalid fault spec item {item!r}: fault {kind!r} given twice")
        params: dict[str, str] = {}
        for pair in (p.strip() for p in params_text.split(",") if p.strip()):
            name, eq, value = pair.partition("=")
            if not eq or not name.strip():
                raise InvalidInput(f"invalid fault spec item {item!r}: expected name=value, got {pair!r}")
            params[name.strip()] = value.strip()
        try:
            plan["faults"][kind] = _KINDS[kind](**params)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(item)"
            raise InvalidInput(f"invalid fault spec item {item!r}: {where}: {first['msg']}") from None
    return FaultPlan(**plan)


def _draw(seed: int, *parts: object) -> float:
    """A uniform number in [0, 1) from a hash of ``parts``: the same inputs, the same draw."""
    digest = hashlib.blake2b("\x1f".join(map(str, (seed, *parts))).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


_MALFORMED_BODY = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class FaultInjector:
    """Applies a :class:`FaultPlan` to the emulator's requests (used by the server's middleware).

    Thread-safe: the plan can be swapped (:meth:`set_plan`) and the counters read from any thread.
    Tokens are never stored, only a hash of them.
    """

    def __init__(self, plan: FaultPlan | str | None = None) -> None:
        self._lock = threading.Lock()
        self.set_plan(plan)

    def set_plan(self, plan: FaultPlan | str | None) -> None:
        """Replace the plan (a spec string is parsed); counters and token state are reset."""
        parsed = plan if isinstance(plan, FaultPlan) else parse_faults(plan)
        with self._lock:
            self.plan = parsed
            self._occurrences: Counter = Counter()
            self._requests = 0
            self._burst_left = 0
            self._token_uses: Counter = Counter()
            self._expired_tokens: set[str] = set()
            self.injected: Counter = Counter()
            self.log: list[tuple[str, str, str]] = []  # (kind, route, path)

    @property
    def active(self) -> bool:
        return bool(self.plan.faults)

    def _record(self, kind: str, route: str, path: str) -> None:
        self.injected[kind] += 1
        self.log.append((kind, route, path))

    def _rate_hit(self, kind: str, route: str, key: str) -> bool:
        fault = self.plan.get(kind)
        if fault is None or not fault.applies(route):
            return False
        n = self._occurrences[(kind, key)]
        self._occurrences[(kind, key)] += 1
        return _draw(self.plan.seed, kind, key, n) < fault.rate

    def _match_hit(self, kind: str, route: str, match_id: str | None) -> bool:
        fault = self.plan.get(kind)
        if fault is None or match_id is None or not fault.applies(route):
            return False
        return _draw(self.plan.seed, kind, match_id.lower()) < fault.rate

    def token_expired(self, route: str, path: str, token: str) -> bool:
        """Whether this request's spartan token has expired (``401`` fault); counts its use otherwise."""
        fault = self.plan.get("401")
        if fault is None or not fault.applies(route):
            return False
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            if key not in self._expired_tokens:
                self._token_uses[key] += 1
                if self._token_uses[key] <= fault.after:
                    return False
                self._expired_tokens.add(key)
            self._record("401", route, path)
            return True

    def saw_token(self, token: str) -> bool:
        """Whether a request carried ``token`` (tracked while a ``401`` fault is on; only a hash is kept)."""
        with self._lock:
            return hashlib.sha256(token.encode()).hexdigest() in self._token_uses

    def before(self, route: str, path: str, match_id: str | None) -> tuple[int, dict[str, str]] | float | None:
        """Faults decided before the handler runs: ``(status, headers)`` to answer instead, a number of
        seconds to hang first, or ``None``."""
        with self._lock:
            burst = self.plan.get("429")
            if burst is not None and burst.applies(route):
                self._requests += 1
                if self._burst_left == 0 and self._requests % burst.every == 0:
                    self._burst_left = burst.burst
                if self._burst_left > 0:
                    self._burst_left -= 1
                    self._record("429", route, path)
                    return 429, {"Retry-After": str(burst.retry_after)}
            if self._rate_hit("5xx", route, path):
                codes = self.plan.get("5xx").codes
                n = self._occurrences[("5xx", path)]
                self._record("5xx", route, path)
                return codes[int(_draw(self.plan.seed, "5xx-code", path, n) * len(codes))], {}
            if self._match_hit("expired", route, match_id):
                self._record("expired", route, path)
                return 404, {}
            if self._rate_hit("hang", route, path):
                self._record("hang", route, path)
                return float(self.plan.get("hang").seconds)
        return None

    def after(self, route: str, path: str, match_id: str | None, body: bytes) -> bytes:
        """Faults applied to a 200 body: enum (data), film_bad, truncate, malformed."""
        with self._lock:
            if self._match_hit("enum", route, match_id):
                try:
                    doc = orjson.loads(body)
                    doc["MatchInfo"]["PlaylistExperience"] = self.plan.get("enum").value
                    body = orjson.dumps(doc)
                    self._record("enum", route, path)
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    pass
            if self._rate_hit("film_bad", route, path):
                self._record("film_bad", route, path)
                return body[: len(body) // 2]
            if self._rate_hit("truncate", route, path):
                self._record("truncate", route, path)
                cut = 1 + int(_draw(self.plan.seed, "cut", path) * max(1, len(body) - 2))
                return body[:cut]
            if self._rate_hit("malformed", route, path):
                self._record("malformed", route, path)
                return _MALFORMED_BODY
        return body

    def snapshot(self) -> dict[str, Any]:
        """``{"injected": {kind: n}, "log": [(kind, route, path), …]}``."""
        with self._lock:
            return {"injected": dict(self.injected), "log": list(self.log)}
