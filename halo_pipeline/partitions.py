"""The one partitioning scheme of the project: player (dynamic, xuid) × month (UTC calendar month).

Dagster sorts multi-partition dimensions by name, so a key reads ``"2025-01-01|2535445291321133"``
(month first, then player).
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from halo_pipeline.ids import InvalidInput, parse_xuid
from halo_pipeline.months import FIRST_MONTH, Month

PLAYERS = "players"

#: The run tags that select a partition range for one run (Dagster's own tags: ``dagster asset materialize
#: --partition-range`` and single-run backfills set them; Dagster exports no constant for them).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

players_partitions = dg.DynamicPartitionsDefinition(name=PLAYERS)
months_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, end_offset=1)
player_month_partitions = dg.MultiPartitionsDefinition(
    {"player": players_partitions, "month": months_partitions}
)


def partition_key(xuid: int | str, month: str) -> dg.MultiPartitionKey:
    """The partition key of ``xuid`` × ``month`` (``YYYY-MM-01``)."""
    return dg.MultiPartitionKey({"player": str(xuid), "month": str(month)})


def partition_range_tags(xuid: int | str, first_month: str, last_month: str) -> dict[str, str]:
    """Run tags selecting the partitions of ``xuid`` from ``first_month`` to ``last_month`` in one run
    (the assets' ``BackfillPolicy.single_run()`` lets one run cover them all)."""
    return {RANGE_START_TAG: str(partition_key(xuid, first_month)),
            RANGE_END_TAG: str(partition_key(xuid, last_month))}


def partition_range_of(tags: Mapping[str, str]) -> tuple[int, Month, Month] | None:
    """``(xuid, first month, last month)`` of a run's partition-range tags, or ``None`` when the run has none.

    Raises:
        InvalidInput: the range spans several players, or a key is malformed.
    """
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    if not start or not end:
        return None
    (xuid, first), (other, last) = split_key(start), split_key(end)
    if xuid != other:
        raise InvalidInput(f"partition range {start}…{end} spans two players")
    return xuid, first, last


def split_key(key: str | dg.MultiPartitionKey) -> tuple[int, Month]:
    """``(xuid, month)`` of a partition key ``"YYYY-MM-01|xuid"``.

    Raises:
        InvalidInput: the key is not a month|xuid pair, or names a month outside the partitions.
    """
    if isinstance(key, dg.MultiPartitionKey):
        by_dim = key.keys_by_dimension
        player, month = by_dim["player"], by_dim["month"]
    else:
        parts = str(key).split("|")
        if len(parts) != 2:
            raise InvalidInput(f"invalid partition key {key!r}: expected 'YYYY-MM-01|<xuid>'")
        month, player = parts
    month_key = Month.parse(month)
    if month_key < FIRST_MONTH:
        raise InvalidInput(f"month {month!r} is before the first partition month {FIRST_MONTH}")
    return parse_xuid(player), month_key
