"""``contrastx-info``: report what the native extension contains and what is usable now."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .._native import native_info

# Left out of the text report: the build table is printed separately, and the CUDA runtime's
# raw error (``cudaErrorInsufficientDriver`` on a machine without a GPU) is summed up in
# ``cuda_status``; ``--json`` has it.
_TEXT_SKIPS = ("build", "cuda_runtime_error")


def _format(info: dict) -> str:
    lines = []
    keys = [k for k in info if k not in _TEXT_SKIPS]
    width = max(len(k) for k in keys)
    for key in keys:
        lines.append(f"{key:<{width}}  {info[key]}")
    build = info.get("build") or {}
    if build:
        lines.append("build:")
        bwidth = max(len(k) for k in build)
        for key, value in build.items():
            lines.append(f"  {key:<{bwidth}}  {value}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print :func:`contrastx.native_info` (as text, or JSON with ``--json``)."""
    parser = argparse.ArgumentParser(
        prog="contrastx-info",
        description="Show which native kernels (CPU, CUDA) contrastx was built with and can use.",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print a JSON object (with every field, including the CUDA runtime's raw error)",
    )
    args = parser.parse_args(argv)
    info = native_info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(_format(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
