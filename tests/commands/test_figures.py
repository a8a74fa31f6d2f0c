"""tinymtt figures: every figure written, readable PNGs, same seed -> same images, clear errors."""

import sys

import numpy as np
import pytest

from tinymtt.cli import main
from tinymtt.commands import figures

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

NAMES = ["attention_sort.png", "task_affinity.png", "curves_conditioned_vs_joint.png", "gradcheck_errors.png",
         "positional_encoding.png"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    assert main(["figures", "--out", str(out), "--quick"]) == 0
    return out


def test_every_figure_is_a_readable_png(quick_dir):
    assert sorted(p.name for p in quick_dir.iterdir()) == sorted(NAMES)
    for name in NAMES:
        path = quick_dir / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
        assert path.stat().st_size > 20_000, f"{name} is suspiciously small ({path.stat().st_size} bytes)"
        pixels = imread(path)
        height, width = pixels.shape[:2]
        assert width >= 600 and height >= 300, f"{name} is {width}×{height} px"
        assert pixels[..., :3].std() > 0.05, f"{name} is (nearly) blank"


def test_same_seed_same_images(quick_dir, tmp_path):
    paths = figures.make_figures(tmp_path, quick=True, seed=0)
    assert [p.name for p in paths] == NAMES
    for path in paths:
        assert np.array_equal(imread(path), imread(quick_dir / path.name)), f"{path.name}: pixels differ"
        assert path.read_bytes() == (quick_dir / path.name).read_bytes(), f"{path.name}: bytes differ"


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)          # `import matplotlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"matplotlib.*pip install 'tinymtt\[lessons\]'"):
        figures.make_figures(tmp_path, quick=True)
    assert main(["figures", "--out", str(tmp_path), "--quick"]) == 2
    error = capsys.readouterr().err
    assert "pip install 'tinymtt[lessons]'" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())                            # nothing trained, nothing written


@pytest.mark.parametrize("argv, text", [(["--bogus"], "unrecognized arguments"), (["--seed", "x"], "--seed"),
                                        (["--seed", "-1"], "--seed must be >= 0")])
def test_bad_options_one_line_exit_2(argv, text, capsys, tmp_path):
    assert main(["figures", *argv, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert text in error and len(error.strip().splitlines()) == 1


@pytest.mark.parametrize("variable, quick, expected", [("1", None, "quick"), ("0", None, "full"), ("0", True, "quick")])
def test_quick_follows_tinymtt_quick(variable, quick, expected, monkeypatch, tmp_path):
    class Stop(Exception):
        pass

    def stop(mode, train_set, val_set, settings, seed, out_dir):   # stands in for training
        assert len(train_set) + len(val_set) == settings["examples"]
        raise Stop(settings)

    monkeypatch.setattr(figures, "_Run", stop)
    monkeypatch.setenv("TINYMTT_QUICK", variable)
    with pytest.raises(Stop) as stopped:
        figures.make_figures(tmp_path, quick=quick)
    assert stopped.value.args[0] == figures.SETTINGS[expected]
