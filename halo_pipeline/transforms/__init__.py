"""Pure transforms: raw API JSON / film chunks / reference files → typed polars DataFrames.

No Dagster, no I/O beyond the reference loaders' file reads, no environment reads. Modules: ``matches``
(match stats & history), ``skill`` (match skill), ``film`` (highlight events), ``reference`` (translations,
medals). Each module exports its frame schemas as ``*_SCHEMA`` dicts.
"""
