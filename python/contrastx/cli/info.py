"""``contrastx-info``: report what the native extension contains and what is usable now."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .._native import native_info


def _format(info: dict) -> str:
    lines = []
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "build":
            continue
        lines.append(f"{key:<{width}}  {value}")
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
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    args = parser.parse_args(argv)
    info = native_info()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print(_format(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
