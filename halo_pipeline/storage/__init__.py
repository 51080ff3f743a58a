"""Files of the warehouse: hive-partitioned Parquet tables, raw landing of API bodies, the DuckDB catalog."""
