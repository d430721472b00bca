"""Timed jobs: APScheduler on the database, run by exactly one node (the lease holder)."""
