"""``python -m bench [NAME ...] [--sizes 60,600,6000] [--quick]``: run the benchmarks."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from types import ModuleType

import bench


def benchmarks() -> dict[str, ModuleType]:
    """Every module of bench/ that has a run() (helpers start with an underscore)."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if callable(getattr(module, "run", None)):
            found[str(getattr(module, "NAME", info.name))] = module
    return found


def _sizes(raw: str) -> list[int]:
    try:
        sizes = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"write sizes as 60,600,6000: {raw!r}") from exc
    if not sizes or any(n < 2 for n in sizes):
        raise argparse.ArgumentTypeError("each size must be at least 2")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, run the chosen benchmarks, return the worst exit status."""
    available = benchmarks()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of: {', '.join(sorted(available))}")
    parser.add_argument(
        "--sizes",
        type=_sizes,
        help="sizes, e.g. 60,600,6000 (invitees; endpoints for sfu; joins per mode for join)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes only (invitations: 60,600; join: 4 joins per mode)"
    )
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(sorted(available))}")
    if args.sizes and args.quick:
        parser.error("--sizes and --quick do not go together")
    status = 0
    for name in args.names or sorted(available):
        module = available[name]
        sizes = args.sizes or (module.QUICK_SIZES if args.quick else module.DEFAULT_SIZES)
        status = max(status, int(module.run(sizes)))
    return status


if __name__ == "__main__":
    sys.exit(main())
