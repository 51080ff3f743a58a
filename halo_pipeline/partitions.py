"""The one partitioning scheme of the project: player (dynamic, xuid) × month (UTC calendar month).

Dagster sorts multi-partition dimensions by name, so a key reads ``"2025-01-01|2535445291321133"``
(month first, then player).
"""

from __future__ import annotations

import dagster as dg

from halo_pipeline.ids import InvalidInput, parse_month, parse_xuid

PLAYERS = "players"
#: First month a partition can hold. Halo Infinite's multiplayer beta started in November 2021.
FIRST_MONTH = "2021-11-01"

players_partitions = dg.DynamicPartitionsDefinition(name=PLAYERS)
months_partitions = dg.MonthlyPartitionsDefinition(start_date=FIRST_MONTH, end_offset=1)
player_month_partitions = dg.MultiPartitionsDefinition(
    {"player": players_partitions, "month": months_partitions}
)


def partition_key(xuid: int | str, month: str) -> dg.MultiPartitionKey:
    """The partition key of ``xuid`` × ``month`` (``YYYY-MM-01``)."""
    return dg.MultiPartitionKey({"player": str(xuid), "month": month})


def partition_range_tags(xuid: int | str, first_month: str, last_month: str) -> dict[str, str]:
    """Run tags selecting the partitions of ``xuid`` from ``first_month`` to ``last_month`` in one run
    (the assets' ``BackfillPolicy.single_run()`` lets one run cover them all)."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    return {
        ASSET_PARTITION_RANGE_START_TAG: str(partition_key(xuid, first_month)),
        ASSET_PARTITION_RANGE_END_TAG: str(partition_key(xuid, last_month)),
    }


def split_key(key: str | dg.MultiPartitionKey) -> tuple[int, str]:
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
    month_key = parse_month(month)
    if month_key < FIRST_MONTH:
        raise InvalidInput(f"month {month!r} is before the first partition month {FIRST_MONTH}")
    return parse_xuid(player), month_key
