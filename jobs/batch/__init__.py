"""The daily batch flow (seed §5): backfill, reprocessing, quality checks, catalog upkeep, workflow.

The detectors in batch mode are the pipeline's (``jobs.batchmode``); nothing here re-implements them.
"""
