"""Make a CPU emulation copy of a CUDA source file (see README.md in this folder).

The copy is plain C++ for ``cuda_emulation.hpp``:

* ``#include "cuda_emulation.hpp"`` goes first and ``#include <cuda_runtime.h>`` is dropped
  (other CUDA headers are refused: their APIs are not emulated);
* every launch ``callee<<<grid, block[, smem[, stream]]>>>(args)`` becomes
  ``::cxemu::Launch({__FILE__, __LINE__, "callee"}, grid, block[, smem[, stream]])(&callee,
  args)``; ``callee`` must name one function (a non-template kernel, or a template kernel with
  all its template arguments given, as CUDA code usually writes them);
* a ``#line`` directive and newline-preserving rewrites keep the original file name and line
  numbers, so compiler errors and the emulator's barrier messages point into the ``.cu`` file.

Comments and string literals are skipped.  Usage::

    python convert.py csrc/cuda/gaussian_cuda.cu -o build/gaussian_cuda.emu.cpp
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

__all__ = ["ConversionError", "convert_file", "convert_source"]

HEADER = "cuda_emulation.hpp"
_RUNTIME_INCLUDE = re.compile(r"^[ \t]*#[ \t]*include[ \t]*[<\"]cuda_runtime(_api)?\.h[>\"]", re.M)
_OTHER_CUDA_INCLUDE = re.compile(
    r"^[ \t]*#[ \t]*include[ \t]*[<\"](cuda[\w.]*|cooperative_groups[\w./]*|cub/[\w./]*|"
    r"thrust/[\w./]*|mma\.h|curand[\w.]*)[>\"]",
    re.M,
)


class ConversionError(ValueError):
    """The source uses something the converter cannot rewrite."""


def _mask(src: str) -> str:
    """``src`` with comments and string / character literals blanked (newlines kept)."""
    out = list(src)
    i, n = 0, len(src)

    def blank(a: int, b: int) -> None:
        for k in range(a, min(b, n)):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        ch = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif ch == "R" and src.startswith('R"', i) and (i == 0 or not _ident(src[i - 1])):
            m = re.match(r'R"([^()\\\s]{0,16})\(', src[i:])
            if not m:
                i += 1
                continue
            end = src.find(")" + m.group(1) + '"', i + m.end())
            j = n if end < 0 else end + len(m.group(1)) + 2
            blank(i, j)
            i = j
        elif ch in "\"'":
            if ch == "'" and i > 0 and src[i - 1].isalnum():  # digit separator: 1'000
                i += 1
                continue
            j = i + 1
            while j < n and src[j] != ch and src[j] != "\n":
                j += 2 if src[j] == "\\" else 1
            blank(i, j + 1)
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _ident(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


def _callee_start(masked: str, end: int, filename: str) -> int:
    """Start of the kernel expression ending just before ``end`` (the ``<<<``)."""
    j = end
    while j > 0 and masked[j - 1].isspace():
        j -= 1
    if j > 0 and masked[j - 1] == ">":  # template arguments: match <...> backwards
        depth = 0
        while j > 0:
            j -= 1
            if masked[j] == ">":
                depth += 1
            elif masked[j] == "<":
                depth -= 1
                if depth == 0:
                    break
        if depth != 0:
            raise ConversionError(
                f"{filename}:{_line_of(masked, end)}: unbalanced template arguments before <<<"
            )
        while j > 0 and masked[j - 1].isspace():
            j -= 1
    k = j
    while k > 0 and (_ident(masked[k - 1]) or masked[k - 1] == ":"):
        k -= 1
    if k == j or not (masked[k].isalpha() or masked[k] in "_:"):
        raise ConversionError(
            f"{filename}:{_line_of(masked, end)}: cannot find the kernel name before <<<"
        )
    return k


def _config_end(masked: str, start: int, filename: str) -> int:
    """Index of the ``>>>`` closing the launch configuration that starts at ``start``."""
    depth = 0
    i = start
    while i < len(masked):
        ch = masked[i]
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and masked.startswith(">>>", i):
            return i
        elif ch == ";":
            break
        i += 1
    raise ConversionError(f"{filename}:{_line_of(masked, start)}: no >>> closing this <<<")


def convert_source(src: str, filename: str) -> str:
    """Return the emulation copy of CUDA source ``src``.

    Parameters
    ----------
    src : str
        Contents of the ``.cu`` file.
    filename : str
        Name for ``#line`` (what compiler errors and ``__FILE__`` show).

    Returns
    -------
    str
        C++ source that includes ``cuda_emulation.hpp``, with the same line numbering.

    Raises
    ------
    ConversionError
        A CUDA header other than ``cuda_runtime.h``, or a launch that cannot be parsed.
    """
    masked = _mask(src)
    for inc in _OTHER_CUDA_INCLUDE.finditer(src):
        in_code = masked[inc.start() : inc.end()].lstrip().startswith("#")
        if in_code and not _RUNTIME_INCLUDE.match(src, inc.start()):
            raise ConversionError(
                f"{filename}:{_line_of(src, inc.start())}: {inc.group(0).strip()} is not "
                "emulated (only cuda_runtime.h is)"
            )
    pieces: list[str] = []
    pos = 0
    search_from = 0
    while True:
        at = masked.find("<<<", search_from)
        if at < 0:
            break
        start = _callee_start(masked, at, filename)
        if start < pos:
            raise ConversionError(f"{filename}:{_line_of(src, at)}: overlapping launches")
        close = _config_end(masked, at + 3, filename)
        paren = close + 3
        while paren < len(masked) and masked[paren].isspace():
            paren += 1
        if paren >= len(masked) or masked[paren] != "(":
            raise ConversionError(f"{filename}:{_line_of(src, at)}: expected ( after >>>")
        callee = src[start:at].rstrip()
        config = src[at + 3 : close]
        name = " ".join(callee.split())
        after = paren + 1
        while after < len(masked) and masked[after].isspace():
            after += 1
        no_args = after < len(masked) and masked[after] == ")"
        text = f'::cxemu::Launch({{__FILE__, __LINE__, "{name}"}}, {config})(&{callee}' + (
            "" if no_args else ", "
        )
        text += "\n" * (src.count("\n", start, paren + 1) - text.count("\n"))
        pieces += [src[pos:start], text]
        pos = paren + 1
        search_from = pos
    pieces.append(src[pos:])
    body = "".join(pieces)
    # Drop the runtime include, keeping the line.
    body = _RUNTIME_INCLUDE.sub(lambda m: "// " + m.group(0).strip() + "  (emulated)", body)
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    return (
        f"// CPU emulation copy of {filename}, made by tools/cuda_emulation/convert.py.\n"
        f'#include "{HEADER}"\n'
        f'#line 1 "{quoted}"\n' + body
    )


def convert_file(src: str | Path, dst: str | Path, display_name: str | None = None) -> Path:
    """Write the emulation copy of the ``.cu`` file ``src`` to ``dst``; return ``dst``.

    ``display_name`` (default: ``src`` as given) is the file name the copy reports.
    """
    src, dst = Path(src), Path(dst)
    text = convert_source(src.read_text(), display_name or str(src))
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    return dst


def main(argv: list[str] | None = None) -> int:
    """Command line: ``convert.py SRC.cu -o DST.cpp [--name NAME]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", help="CUDA source (.cu)")
    parser.add_argument("-o", "--output", required=True, help="C++ file to write")
    parser.add_argument("--name", help="file name for #line (default: SRC as given)")
    args = parser.parse_args(argv)
    try:
        convert_file(args.src, args.output, args.name)
    except ConversionError as e:
        print(f"convert.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
