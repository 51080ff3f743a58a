"""The month of a partition: a UTC calendar month, written as its partition key ``YYYY-MM-01``.

:class:`Month` is a ``str`` (so it *is* the partition key, a dict key, a Dagster key dimension) with the month
arithmetic the project needs, in one place: parse user text, the month of a UTC datetime, next/previous,
ranges and contiguous blocks, the hive folder values (``year=YYYY/month=MM``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime

from halo_pipeline.ids import InvalidInput

_KEY_RE = re.compile(r"^(\d{4})-(\d{2})-01$")


class Month(str):
    """A month partition key ``YYYY-MM-01`` (a ``str``), e.g. ``Month("2025-01-01")``.

    Raises:
        InvalidInput: the text is not ``YYYY-MM-01`` with a month 01–12 (use :meth:`parse` for user text).
    """

    __slots__ = ()

    def __new__(cls, key: str) -> Month:
        if isinstance(key, Month):
            return key
        match = _KEY_RE.match(str(key))
        if not match or not 1 <= int(match.group(2)) <= 12:
            raise InvalidInput(f"invalid month key {key!r}: expected YYYY-MM-01")
        return super().__new__(cls, key)

    # ---------------------------------------------------------------------------------------------- build

    @classmethod
    def of(cls, moment: datetime | date) -> Month:
        """The month of a (UTC) datetime or date."""
        return cls(f"{moment.year:04d}-{moment.month:02d}-01")

    @classmethod
    def parse(cls, value: str) -> Month:
        """The month of user text ``YYYY-MM`` or ``YYYY-MM-DD``.

        Raises:
            InvalidInput: not a month.
        """
        text = str(value).strip()
        for fmt in ("%Y-%m-%d", "%Y-%m"):
            try:
                return cls.of(datetime.strptime(text, fmt))
            except ValueError:
                continue
        raise InvalidInput(f"invalid month {value!r}: expected YYYY-MM or YYYY-MM-DD")

    @classmethod
    def current(cls) -> Month:
        """This month (UTC)."""
        return cls.of(datetime.now(UTC))

    @classmethod
    def from_hive(cls, year: str | int, month: str | int) -> Month:
        """The month of hive folder values ``year=YYYY`` / ``month=MM``."""
        return cls(f"{int(year):04d}-{int(month):02d}-01")

    # ---------------------------------------------------------------------------------------------- parts

    @property
    def year(self) -> int:
        return int(self[:4])

    @property
    def number(self) -> int:
        """The month number, 1–12."""
        return int(self[5:7])

    @property
    def label(self) -> str:
        """``YYYY-MM`` (what people type and read)."""
        return self[:7]

    @property
    def hive(self) -> tuple[str, str]:
        """``("YYYY", "MM")``: the values of the ``year=`` and ``month=`` folders."""
        return self[:4], self[5:7]

    @property
    def start(self) -> datetime:
        """The first instant of the month, UTC."""
        return datetime(self.year, self.number, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant of the next month, UTC (exclusive end)."""
        return self.next().start

    # ---------------------------------------------------------------------------------------------- arithmetic

    def next(self) -> Month:
        year, mm = self.year, self.number
        return Month(f"{year + mm // 12:04d}-{mm % 12 + 1:02d}-01")

    def previous(self) -> Month:
        year, mm = self.year, self.number
        return Month(f"{year - (mm == 1):04d}-{(mm - 2) % 12 + 1:02d}-01")

    def until(self, last: str) -> list[Month]:
        """Months from this one to ``last`` inclusive (empty when ``last`` is earlier)."""
        last = Month(last)
        out: list[Month] = []
        month = self
        while month <= last:
            out.append(month)
            month = month.next()
        return out


#: The first month with Halo Infinite multiplayer matches (its beta started in November 2021): the first
#: month partition.
FIRST_MONTH = Month("2021-11-01")


def month_blocks(months: Iterable[str]) -> list[tuple[Month, Month]]:
    """Contiguous runs of ``months`` as ``(first, last)``: ``["2024-08-01", "2024-09-01", "2025-01-01"]`` →
    ``[("2024-08-01", "2024-09-01"), ("2025-01-01", "2025-01-01")]``."""
    blocks: list[tuple[Month, Month]] = []
    for month in sorted({Month(m) for m in months}):
        if blocks and blocks[-1][1].next() == month:
            blocks[-1] = (blocks[-1][0], month)
        else:
            blocks.append((month, month))
    return blocks
