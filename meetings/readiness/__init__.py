"""Readiness: every centre connected before the meeting starts.

The connection check anyone can run (`checks`), the readiness board of a meeting (`board`), the
live connection monitoring (`monitor`) and each unit's connection history with its follow-up
issues (`history`). The tables are in `models`.
"""
