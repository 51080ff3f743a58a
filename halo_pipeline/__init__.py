"""halo_pipeline: a Dagster project that keeps Halo Infinite match records in a Parquet + DuckDB warehouse."""
