"""Every input check names the argument and shows what was expected and what was received."""

import re
import sys
import types

import numpy as np
import pytest

from tinymtt.validation import (ShapeError, check_array, check_index_range, check_integer, check_number,
                                check_positive_integer, check_probability, check_same_module, check_shape, describe,
                                scalar_upstream)


def test_shape_error_is_a_value_error():
    assert issubclass(ShapeError, ValueError)


def test_describe():
    assert describe(np.zeros((2, 3), dtype=np.float32)) == "float32 array of shape (2, 3)"
    assert describe(np.zeros(())) == "float64 array of shape ()"
    assert describe([1, 2]) == "list"
    assert describe(None) == "NoneType"


# ---------------------------------------------------------------- check_array

def test_check_array_returns_its_input():
    x = np.zeros((2, 3))
    assert check_array(x, "x", ndim=2, kind="float") is x


@pytest.mark.parametrize("value, received", [([1.0, 2.0], "list"), (3.0, "float"), (None, "NoneType")])
def test_check_array_not_an_array(value, received):
    with pytest.raises(TypeError, match=rf"^x must be a NumPy or CuPy array, got {received}$"):
        check_array(value, "x")


def test_check_array_ndim():
    with pytest.raises(ShapeError, match=re.escape("w must have 2 dimensions, got float64 array of shape (3,)")):
        check_array(np.zeros(3), "w", ndim=2)


def test_check_array_min_ndim():
    with pytest.raises(ShapeError, match=re.escape("x must have at least 1 dimensions, got float64 array of shape ()")):
        check_array(np.zeros(()), "x", min_ndim=1)


@pytest.mark.parametrize("kind, value, expected", [
    ("float", np.zeros(3, dtype=np.int64), "logits must be a floating-point array, got int64 array of shape (3,)"),
    ("float", np.zeros(3, dtype=np.complex128), "logits must be a floating-point array, got complex128 array"),
    ("int", np.zeros(3), "logits must be an integer array (token ids / class labels), got float64 array of shape (3,)"),
    ("int", np.zeros(3, dtype=bool), "logits must be an integer array (token ids / class labels), got bool array"),
    ("bool", np.zeros(3, dtype=np.int8), "logits must be a boolean array (True = keep), got int8 array of shape (3,)"),
])
def test_check_array_kind(kind, value, expected):
    with pytest.raises(TypeError, match=re.escape(expected)):
        check_array(value, "logits", kind=kind)


@pytest.mark.parametrize("kind, dtype", [("float", np.float32), ("float", np.float64), ("int", np.int32),
                                         ("int", np.uint8), ("bool", np.bool_), (None, np.complex64)])
def test_check_array_kind_accepts(kind, dtype):
    check_array(np.zeros(2, dtype=dtype), "x", kind=kind)


def test_check_array_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="kind must be one of"):
        check_array(np.zeros(2), "x", kind="floating")


# ---------------------------------------------------------------- check_shape

def test_check_shape_message_with_labels():
    x = np.zeros((2, 3, 5))
    expected = "x must have shape (B, S, D) = (2, ?, 4), got float64 array of shape (2, 3, 5)"
    with pytest.raises(ShapeError, match=re.escape(expected)):
        check_shape(x, "x", (2, None, 4), "(B, S, D)")


def test_check_shape_message_without_labels():
    with pytest.raises(ShapeError, match=re.escape("b must have shape (4,), got float32 array of shape (5,)")):
        check_shape(np.zeros(5, dtype=np.float32), "b", (4,))


def test_check_shape_wrong_number_of_axes():
    with pytest.raises(ShapeError, match=re.escape("gamma must have shape (6,), got float64 array of shape (1, 6)")):
        check_shape(np.zeros((1, 6)), "gamma", (6,))


def test_check_shape_none_matches_any_size():
    x = np.zeros((7, 3))
    assert check_shape(x, "x", (None, 3)) is x
    check_shape(np.zeros(()), "scalar", ())


def test_check_shape_not_an_array():
    with pytest.raises(TypeError, match="x must be a NumPy or CuPy array, got list"):
        check_shape([1, 2], "x", (2,))


# ---------------------------------------------------------------- check_index_range

def test_check_index_range_too_large():
    ids = np.array([[0, 3], [12, 1]])
    expected = "ids must lie in [0, 10) (vocabulary size 10), got a value 12"
    with pytest.raises(ShapeError, match=re.escape(expected)):
        check_index_range(ids, "ids", 10)


def test_check_index_range_negative():
    expected = "targets must lie in [0, 5) (number of classes 5), got a value -1"
    with pytest.raises(ShapeError, match=re.escape(expected)):
        check_index_range(np.array([0, -1, 4]), "targets", 5, "number of classes")


def test_check_index_range_boundaries_pass():
    ids = np.array([0, 9, 5], dtype=np.int32)
    assert check_index_range(ids, "ids", 10) is ids
    check_index_range(np.zeros((0,), dtype=np.int64), "ids", 1)  # empty: nothing to check


def test_check_index_range_needs_integers():
    with pytest.raises(TypeError, match=re.escape("ids must be an integer array (token ids / class labels), "
                                                  "got float64 array of shape (2,)")):
        check_index_range(np.array([1.0, 2.0]), "ids", 10)


# ---------------------------------------------------------------- check_probability

@pytest.mark.parametrize("p", [0, 0.0, 0.5, 0.999, np.float32(0.1), np.float64(0.25)])
def test_check_probability_accepts(p):
    value = check_probability(p, "dropout_p")
    assert isinstance(value, float) and value == pytest.approx(float(p))


@pytest.mark.parametrize("p, shown", [(1.0, "1.0"), (1, "1"), (-0.1, "-0.1"), (float("nan"), "nan"),
                                      ("0.1", "'0.1'"), (True, "True"), (None, "None")])
def test_check_probability_rejects(p, shown):
    with pytest.raises(ValueError, match=re.escape(f"dropout_p must be a number in [0, 1), got {shown}")):
        check_probability(p, "dropout_p")


# ---------------------------------------------------------------- check_same_module

def test_check_same_module_all_numpy():
    check_same_module(x=np.zeros(2), w=np.zeros(2), b=None)


def test_check_same_module_mixed(monkeypatch):
    """A stand-in CuPy module whose ndarray is a NumPy subclass: enough to tell the two apart."""
    fake = types.ModuleType("cupy")
    fake.ndarray = type("ndarray", (np.ndarray,), {})
    monkeypatch.setitem(sys.modules, "cupy", fake)
    on_device = np.zeros(2).view(fake.ndarray)
    with pytest.raises(TypeError, match=re.escape("arrays must all be on one backend, got x on numpy, w on cupy")):
        check_same_module(x=np.zeros(2), w=on_device, b=None)


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_integer_accepts_python_and_numpy_integers_and_returns_an_int(value):
    assert check_integer(value, "steps", 1) == 3 and type(check_integer(value, "steps", 1)) is int


@pytest.mark.parametrize("value", [True, 2.0, "2", None, -1])
def test_check_integer_names_the_argument_and_the_bound(value):
    with pytest.raises(ValueError, match=re.escape(f"window must be an integer >= 0, got {value!r}")):
        check_integer(value, "window", 0)


def test_check_positive_integer_says_positive():
    assert check_positive_integer(1, "num_heads") == 1
    with pytest.raises(ValueError, match=re.escape("num_heads must be a positive integer, got 0")):
        check_positive_integer(0, "num_heads")


@pytest.mark.parametrize("value, options, ok", [
    (0.5, {}, True), (0, {}, True), (np.float32(2.5), {}, True), (0, {"low_open": True}, False),
    (1.0, {"high": 1.0, "high_open": True}, False), (-0.1, {}, False), (float("nan"), {}, False),
    (float("inf"), {}, False), (True, {}, False), ("1", {}, False)])
def test_check_number(value, options, ok):
    if ok:
        assert check_number(value, "lr", **options) == float(value)
    else:
        with pytest.raises(ValueError, match=r"lr must be a finite number in [\[(]"):
            check_number(value, "lr", **options)


def test_scalar_upstream():
    assert scalar_upstream(2.0, np.float32, np) == 2.0                         # a Python float stays weak
    out = scalar_upstream(np.array(2.0), np.float32, np)                        # a 0-d array: cast, no upcast
    assert out.dtype == np.float32 and out.shape == ()
    assert scalar_upstream(np.float32(2.0), np.float64, np).dtype == np.float64  # a NumPy scalar too
    with pytest.raises(ShapeError, match="dout must be a scalar"):
        scalar_upstream(np.ones(2), np.float32, np)
    with pytest.raises(TypeError, match="dout must be a floating-point array"):
        scalar_upstream(np.array(1), np.float32, np)
