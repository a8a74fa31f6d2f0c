"""The digits suite: shapes, the transforms really applied, the blanked row and its target."""

import sys

import numpy as np
import pytest

from tinymtt.data import load_digits_suite, transform_images


def sklearn_digits():
    datasets = pytest.importorskip("sklearn.datasets", reason="the digits suite needs scikit-learn: "
                                                              "pip install 'tinymtt[digits]'")
    return datasets.load_digits()


@pytest.fixture(scope="module")
def suite():
    sklearn_digits()
    return load_digits_suite(seed=0)


def test_shapes_and_tasks(suite):
    assert len(suite) == 1797 and suite.inputs.shape == (1797, 8, 8) and suite.inputs.dtype == np.float32
    assert suite.input_dim == 8 and suite.vocab_size is None and (suite.lengths == 8).all()
    assert 0 <= suite.inputs.min() and suite.inputs.max() <= 1
    assert [(t.name, t.kind, t.num_outputs) for t in suite.tasks] == [
        ("digit", "sequence", 10), ("transform", "sequence", 4), ("row", "regression", 8)]
    assert suite.targets["row"].shape == (1797, 8) and suite.targets["row"].dtype == np.float32
    assert suite.targets["digit"].dtype == suite.targets["transform"].dtype == np.int64
    assert "CC BY 4.0" in suite.source and "scikit-learn" in suite.source
    # every transform and every row is used, about equally often
    assert np.bincount(suite.targets["transform"], minlength=4).min() > 380
    assert np.bincount(suite.metadata["blank_row"], minlength=8).min() > 170


def test_transforms_blank_row_and_labels(suite):
    original = sklearn_digits()
    rows, examples = suite.metadata["blank_row"], np.arange(len(suite))
    assert (suite.inputs[examples, rows] == 0).all()                         # the blanked row is zero
    restored = suite.inputs.copy()
    restored[examples, rows] = suite.targets["row"]                          # put the target back ...
    undone = transform_images(restored, suite.targets["transform"])          # ... and undo the transform
    np.testing.assert_allclose(undone, original.images / 16, atol=1e-7)      # = sklearn's image
    np.testing.assert_array_equal(suite.targets["digit"], original.target)   # the original labels
    # the transforms are really applied: a flipped image differs from the original
    changed = ~np.isclose(restored, original.images / 16).all(axis=(1, 2))
    assert changed[suite.targets["transform"] > 0].mean() > 0.95


def test_transform_images_by_hand():
    image = np.arange(6).reshape(1, 2, 3)                                    # [[0 1 2], [3 4 5]]
    images = np.repeat(image, 4, axis=0)
    out = transform_images(images, np.arange(4))
    np.testing.assert_array_equal(out[0], [[0, 1, 2], [3, 4, 5]])            # identity
    np.testing.assert_array_equal(out[1], [[2, 1, 0], [5, 4, 3]])            # horizontal flip
    np.testing.assert_array_equal(out[2], [[3, 4, 5], [0, 1, 2]])            # vertical flip
    np.testing.assert_array_equal(out[3], [[5, 4, 3], [2, 1, 0]])            # rotate 180
    np.testing.assert_array_equal(out[3], np.rot90(image[0], 2))


def test_seeded_and_task_choice(suite):
    again, other = load_digits_suite(seed=0), load_digits_suite(seed=1)
    np.testing.assert_array_equal(again.inputs, suite.inputs)
    assert not np.array_equal(other.inputs, suite.inputs)
    digit_only = load_digits_suite(seed=0, tasks="digit")
    assert digit_only.task_names == ["digit"]
    np.testing.assert_array_equal(digit_only.inputs, suite.inputs)           # the same inputs
    with pytest.raises(ValueError, match="tasks"):
        load_digits_suite(tasks=["digit", "colour"])


def test_clear_error_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)                        # import sklearn -> ImportError
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'tinymtt\[digits\]'"):
        load_digits_suite()

