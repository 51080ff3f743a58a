"""Dagster definitions, one folder per asset family."""

import warnings

import dagster as dg

# backfill_policy and pool are marked beta/preview by Dagster 1.13; we rely on them on purpose.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
