"""Build contrastx's CUDA kernels for the CPU emulation into one shared library.

Converts ``csrc/cuda/*.cu`` and ``selftest.cu`` with :mod:`convert`, compiles them and
``contrastx_capi.cpp`` with a C++20 compiler (in parallel) and links
``libcontrastx_cuda_emu.so``, whose ``extern "C"`` functions are documented in
``contrastx_capi.cpp`` and ``selftest.cu``.  Used by ``tests/ops/test_cuda_emulated.py``; from
the command line (e.g. for a sanitizer build)::

    python tools/cuda_emulation/build.py --out /tmp/emu --flags="-g -fsanitize=undefined"
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _load_convert():
    spec = importlib.util.spec_from_file_location("cxemu_convert", HERE / "convert.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


convert_file = _load_convert().convert_file

__all__ = [
    "CXXFLAGS",
    "LIBRARY",
    "BuildError",
    "ToolchainError",
    "build",
    "kernel_sources",
    "probe_toolchain",
]

LIBRARY = "libcontrastx_cuda_emu.so"
CXXFLAGS = ("-std=c++20", "-O1", "-pthread", "-fPIC", "-Wno-unknown-pragmas")
INCLUDES = (REPO / "csrc", REPO / "csrc" / "cuda", HERE)

# A C++20 program with what the emulation needs from the toolchain (C++20 library, ucontext,
# threads), built as a shared library like the real thing.
_PROBE = """
#include <barrier>
#include <bit>
#include <cstdint>
#include <ucontext.h>
extern "C" int probe() {
    std::barrier<> b(1);
    b.arrive_and_wait();
    ucontext_t ctx;
    return getcontext(&ctx) + std::bit_cast<std::int32_t>(1.0f);
}
"""


class ToolchainError(RuntimeError):
    """The compiler is missing or cannot build a trivial C++20 shared library."""


class BuildError(RuntimeError):
    """Converting or compiling the kernel sources failed (a problem in the sources)."""


def kernel_sources() -> list[Path]:
    """The CUDA sources that go into the library: ``csrc/cuda/*.cu`` and ``selftest.cu``."""
    return [*sorted((REPO / "csrc" / "cuda").glob("*.cu")), HERE / "selftest.cu"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def probe_toolchain(cxx: str = "g++", flags: tuple[str, ...] = ()) -> None:
    """Raise :class:`ToolchainError` unless ``cxx`` builds a trivial C++20 shared library.

    Parameters
    ----------
    cxx : str
        Compiler command.
    flags : tuple of str
        Extra flags, as given to :func:`build`.
    """
    if shutil.which(cxx) is None:
        raise ToolchainError(f"C++ compiler {cxx!r} not found")
    with tempfile.TemporaryDirectory(prefix="cxemu-probe-") as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text(_PROBE)
        res = _run([cxx, *CXXFLAGS, *flags, "-shared", str(src), "-o", str(Path(tmp) / "p.so")])
    if res.returncode != 0:
        raise ToolchainError(
            f"{cxx} cannot build a C++20 shared library with <barrier> / <bit> / ucontext:\n"
            + res.stderr[-3000:]
        )


def build(
    out_dir: str | Path,
    cxx: str = "g++",
    flags: tuple[str, ...] = (),
    jobs: int | None = None,
) -> Path:
    """Convert, compile and link the emulated kernels; return the library's path.

    Parameters
    ----------
    out_dir : str or Path
        Directory for the converted sources, objects and the library.
    cxx : str
        C++20 compiler.
    flags : tuple of str
        Extra compiler and linker flags (after :data:`CXXFLAGS`).
    jobs : int, optional
        Parallel compilations (default: the number of CPUs).

    Returns
    -------
    Path
        ``out_dir / LIBRARY``.

    Raises
    ------
    BuildError
        A source failed to convert or compile, or the link failed; the message has the
        compiler's output.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    units = []
    for src in kernel_sources():
        dst = out / (src.stem + ".emu.cpp")
        try:
            shown = src.relative_to(REPO)
        except ValueError:
            shown = src
        try:
            convert_file(src, dst, display_name=str(shown))
        except ValueError as e:
            raise BuildError(str(e)) from e
        units.append(dst)
    units.append(HERE / "contrastx_capi.cpp")
    includes = [f"-I{p}" for p in INCLUDES]

    def compile_unit(src: Path) -> tuple[Path, subprocess.CompletedProcess]:
        obj = out / (src.name + ".o")
        return obj, _run([cxx, *CXXFLAGS, *flags, *includes, "-c", str(src), "-o", str(obj)])

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        results = list(pool.map(compile_unit, units))
    errors = [f"$ {' '.join(r.args)}\n{r.stderr}" for _, r in results if r.returncode != 0]
    if errors:
        raise BuildError("compiling the emulated kernels failed:\n" + "\n".join(errors))
    lib = out / LIBRARY
    res = _run([cxx, *CXXFLAGS, *flags, "-shared", *(str(o) for o, _ in results), "-o", str(lib)])
    if res.returncode != 0:
        raise BuildError(f"linking {lib.name} failed:\n{res.stderr}")
    return lib


def main(argv: list[str] | None = None) -> int:
    """Command line: ``build.py --out DIR [--cxx g++] [--flags "..."]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="build directory")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "g++"), help="C++20 compiler")
    parser.add_argument("--flags", default="", help="extra compiler / linker flags")
    args = parser.parse_args(argv)
    flags = tuple(shlex.split(args.flags))
    try:
        probe_toolchain(args.cxx, flags)
        print(build(args.out, args.cxx, flags))
    except (ToolchainError, BuildError) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
