"""Builds the SFU's optional C fast path; everything else is declared in pyproject.toml.

``meetings.rtc._fastpath`` needs a C compiler and Python's headers (Debian: gcc, python3-dev).
Without them the install still succeeds and the SFU uses the same logic in Python
(meetings/rtc/forwarder.py), about a third slower per forwarded packet (docs/media.md).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "meetings.rtc._fastpath",
            ["meetings/rtc/_fastpath.c"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
            ],
            optional=True,
        )
    ]
)
