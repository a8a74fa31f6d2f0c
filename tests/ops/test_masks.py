"""Causal and padding masks against hand-written expected arrays."""

import numpy as np
import pytest

from tinymtt import backend
from tinymtt.ops.masks import causal_mask, padding_mask

from helpers import host

T, F = True, False


def test_causal_mask_by_hand():
    expected = np.array([[T, F, F, F],
                         [T, T, F, F],
                         [T, T, T, F],
                         [T, T, T, T]])
    mask = causal_mask(4)
    assert mask.dtype == np.bool_ and mask.shape == (4, 4)
    np.testing.assert_array_equal(host(mask), expected)


def test_causal_mask_of_one_position():
    np.testing.assert_array_equal(host(causal_mask(1)), np.array([[T]]))


def test_causal_mask_uses_the_given_module_or_the_current_backend():
    assert isinstance(causal_mask(3, xp=np), np.ndarray)
    assert isinstance(causal_mask(3), backend.get_array_module().ndarray)


@pytest.mark.parametrize("seq_len", [0, -1, 2.0, True, None])
def test_causal_mask_rejects_bad_seq_len(seq_len):
    with pytest.raises(ValueError, match="seq_len"):
        causal_mask(seq_len)


EXPECTED_LENGTHS_2_0_4 = np.array([[T, T, F, F],
                                   [F, F, F, F],
                                   [T, T, T, T]])


@pytest.mark.parametrize("lengths", [
    [2, 0, 4],
    (2, 0, 4),
    np.array([2, 0, 4]),
    np.array([2, 0, 4], dtype=np.int32),
    np.array([2, 0, 4], dtype=np.uint8),
], ids=["list", "tuple", "int64", "int32", "uint8"])
def test_padding_mask_from_lengths_by_hand(lengths):
    if isinstance(lengths, np.ndarray):
        lengths = backend.to_device(lengths, dtype=lengths.dtype)
    mask = padding_mask(lengths, 4)
    assert mask.dtype == np.bool_ and mask.shape == (3, 1, 1, 4)
    np.testing.assert_array_equal(host(mask)[:, 0, 0], EXPECTED_LENGTHS_2_0_4)
    assert isinstance(mask, backend.get_array_module().ndarray)


def test_padding_mask_from_a_bool_array():
    real = np.array([[T, F, T], [F, F, T]])  # need not be a prefix
    mask = padding_mask(backend.to_device(real), 3)
    assert mask.shape == (2, 1, 1, 3)
    np.testing.assert_array_equal(host(mask)[:, 0, 0], real)


def test_padding_and_causal_combine_to_batch_by_query_by_key():
    mask = padding_mask([2, 3], 3) & causal_mask(3)
    expected = np.array([[[T, F, F], [T, T, F], [T, T, F]],
                         [[T, F, F], [T, T, F], [T, T, T]]])[:, None]
    assert mask.shape == (2, 1, 3, 3)
    np.testing.assert_array_equal(host(mask), expected)


def test_padding_mask_broadcasts_to_attention_scores():
    mask = padding_mask([1, 2], 2)
    assert np.broadcast_shapes(mask.shape, (2, 4, 5, 2)) == (2, 4, 5, 2)


@pytest.mark.parametrize("lengths, bad", [([2, -1, 3], "-1"), ([2, 5, 3], "5")])
def test_padding_mask_rejects_lengths_out_of_range(lengths, bad):
    with pytest.raises(ValueError, match=r"lengths.*\[0, 4\].*" + bad):
        padding_mask(lengths, 4)
    with pytest.raises(ValueError, match=r"lengths.*\[0, 4\]"):
        padding_mask(backend.to_device(np.array(lengths)), 4)


def test_padding_mask_rejects_a_bool_array_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"lengths_or_bool.*seq_len = 4"):
        padding_mask(backend.to_device(np.ones((2, 3), dtype=bool)), 4)


def test_padding_mask_rejects_a_bool_array_that_is_not_2d():
    with pytest.raises(ValueError, match=r"lengths_or_bool.*2 dimensions"):
        padding_mask(backend.to_device(np.ones((2, 1, 4), dtype=bool)), 4)


def test_padding_mask_rejects_lengths_that_are_not_1d():
    with pytest.raises(ValueError, match=r"lengths_or_bool.*1 dimensions"):
        padding_mask(backend.to_device(np.array([[1, 2]])), 4)


@pytest.mark.parametrize("value", [np.array([1.0, 2.0]), [1.5, 2.0], 3, "abc"])
def test_padding_mask_rejects_other_types(value):
    if isinstance(value, np.ndarray):
        value = backend.to_device(value)
    with pytest.raises(TypeError, match="lengths_or_bool"):
        padding_mask(value, 4)


def test_padding_mask_rejects_bad_seq_len():
    with pytest.raises(ValueError, match="seq_len"):
        padding_mask([1, 2], 0)
