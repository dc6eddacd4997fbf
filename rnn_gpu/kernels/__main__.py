"""`python -m rnn_gpu.kernels compile`: compile every kernel variant with
NVRTC for each target architecture, one line each; exit 0 only if all do."""
from __future__ import annotations

import argparse
import sys

from . import SOURCES, define_options, kernel_source
from .nvrtc import NvrtcUnavailable, compile_cubin, version

ARCHITECTURES = ("sm_80", "sm_90")
DTYPES = ("float32", "float64")


def compile_all(archs=ARCHITECTURES, verbose=False) -> int:
    try:
        print(f"NVRTC {version()}")
    except NvrtcUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failures = 0
    for filename, names in SOURCES.items():
        for arch in archs:
            for dtype in DTYPES:
                # The options CuPy's RawModule passes: the target and our defines.
                options = [f"--gpu-architecture={arch}", *define_options(dtype)]
                result = compile_cubin(kernel_source(filename), filename, options)
                failures += not result.ok
                for name in names:
                    registers = _kernel_registers(result.log, name)
                    print(f"{'ok' if result.ok else 'FAILED':6} {arch} {dtype:7} {name:22} "
                          f"registers={registers if registers is not None else '?'} cubin={result.cubin_bytes}B")
                if verbose or not result.ok:
                    print(result.log.strip())
    print(f"{'all kernels compiled' if not failures else f'{failures} compilations failed'}")
    return 0 if failures == 0 else 1


def _kernel_registers(log: str, name: str):
    """ptxas prints 'Compiling entry function ...' then 'Used N registers'."""
    import re

    match = re.search(rf"Function properties for {name}.*?Used (\d+) registers", log, re.S) or \
        re.search(rf"'{name}'.*?Used (\d+) registers", log, re.S)
    return int(match.group(1)) if match else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rnn_gpu.kernels")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("compile", help="compile all kernels with NVRTC (no GPU needed)")
    p.add_argument("--arch", action="append", help="e.g. sm_90 (repeatable); default sm_80 and sm_90")
    p.add_argument("--verbose", action="store_true", help="print the compiler logs")
    args = parser.parse_args(argv)
    return compile_all(tuple(args.arch or ARCHITECTURES), args.verbose)


if __name__ == "__main__":
    sys.exit(main())
