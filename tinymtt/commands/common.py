"""What the commands share: how a command is described, its argument parser, and the BLAS thread count.

Every command is a ``Command``: its name, a line of help, a function that
adds its options to an ``argparse`` parser, and a function that runs it on
the parsed options and returns the exit code. ``tinymtt.cli`` builds one
parser from them and dispatches; a bad option or value is a ``UsageError``,
one line and exit code 2.

This module imports nothing heavy (no NumPy): ``tinymtt.cli`` and the test
suite call ``one_blas_thread`` before NumPy loads, the only moment the BLAS
thread count can be set from the environment.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

EXIT_USAGE = 2        # a bad option, value or file
EXIT_FAILED = 1       # the work itself failed (training diverged, a gradient check failed, ...)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as a shell reports it
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class UsageError(Exception):
    """A bad option or value: printed as one line, exit code 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors raised as one-line UsageErrors instead of printed usage and SystemExit."""

    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


class Command(NamedTuple):
    """One ``tinymtt NAME``."""
    name: str
    help: str                                   # its line in `tinymtt --help`
    add_arguments: Callable                     # (parser) -> None: declares its options
    run: Callable                               # (parsed options) -> exit code
    description: str | None = None              # the text under `tinymtt NAME --help`


def writable_folder(path, option: str) -> Path:
    """``path`` as a folder that exists and takes files, checked before any work starts (else a UsageError).

    The folder is created if needed; a file is created in it and removed again, so a read-only
    file system or a folder without write permission is found now, not after the training.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"tinymtt: {option} {path}: expected a folder, but that path is a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise UsageError(f"tinymtt: {option} {path}: cannot write there ({error.strerror or error})") from None
    return path


def writable_file(path, option: str) -> Path:
    """``path`` as a file that can be written (its folder must exist and take files), checked up front."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"tinymtt: {option} {path}: expected a file name, but that path is a folder")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"tinymtt: {option} {path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise UsageError(f"tinymtt: {option} {path}: the folder {folder} does not exist (create it first)")
    writable_folder(folder, option)
    return path


def text_table(header, rows) -> str:
    """Columns padded to their widest cell, two spaces apart, a line of dashes under the header."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def one_blas_thread():
    """One BLAS thread unless the user chose otherwise; only works before NumPy is imported.

    tinymtt spreads its work over the cores itself (tinymtt.backend.blockwise:
    element-wise work, and the linear layers' matmuls cut into one block per
    thread). A BLAS with threads of its own would compete with those: after
    each call OpenBLAS's idle threads keep spinning on the cores tinymtt's
    threads need, and on a busy machine they make a training step many times
    slower (measured here: 300 steps took 64 s with 2 threads on a 2-core
    machine with a busy neighbour, 4.8 s with 1). An
    OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS already set is respected.
    """
    if "numpy" not in sys.modules:
        for variable in BLAS_VARIABLES:
            os.environ.setdefault(variable, "1")


@contextlib.contextmanager
def limit_blas_threads(count=1):
    """Pin BLAS to ``count`` threads inside the block, NumPy already loaded (threadpoolctl when
    installed; else no change, and the block gets False)."""
    try:
        from threadpoolctl import threadpool_limits      # optional: pip install threadpoolctl
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=count):
        yield True
