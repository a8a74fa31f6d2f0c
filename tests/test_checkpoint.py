"""Checkpoints: bit-exact round trips, in-place resume, atomic writes, and every way a file can be wrong."""

import json
import os

import numpy as np
import pytest

from tinymtt import backend, checkpoint
from tinymtt.checkpoint import CheckpointError, load, load_arrays, load_into, load_meta, save, save_arrays
from tinymtt.config import ModelConfig
from tinymtt.model import MultiTaskTransformer

from helpers import host, randint, randn

TASKS = [dict(name="tag", kind="token", num_outputs=3),
         dict(name="topic", kind="sequence", num_outputs=2),
         dict(name="score", kind="regression", num_outputs=2)]
WQ = "encoder.blocks.0.attn.wq.weight"


def make_config(mode="conditioned", dtype="float32", continuous=False, **changes):
    fields = dict(tasks=TASKS, max_len=8, d_model=8, num_heads=2, d_ff=16, num_layers=1, mode=mode, dtype=dtype)
    fields.update(dict(input_dim=3) if continuous else dict(vocab_size=11))
    fields.update(changes)
    return ModelConfig(**fields)


def trained_looking_model(config, seed=1):
    """A model whose every parameter differs from a fresh one built from the same config (and seed)."""
    model = MultiTaskTransformer(config)
    for index, value in enumerate(model.parameters().values()):
        value[...] += randn(*value.shape, seed=seed + index, dtype=value.dtype, scale=0.1)
    return model


def make_batch(config):
    size, seq_len = 3, 5
    if config.vocab_size is not None:
        inputs = randint(0, config.vocab_size, (size, seq_len), seed=2)
    else:
        inputs = randn(size, seq_len, config.input_dim, seed=2, dtype=config.dtype)
    mask = backend.to_device(np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=bool))
    targets = {"tag": randint(0, 3, (size, seq_len), seed=3), "topic": randint(0, 2, (size,), seed=4),
               "score": randn(size, 2, seed=5, dtype=config.dtype)}
    batch = dict(inputs=inputs, mask=mask, targets=targets)
    if config.mode == "conditioned":
        batch["task_ids"] = backend.to_device(np.array([0, 1, 2], dtype=np.int64))
    return batch


def losses(model, batch):
    total, per_task, _ = model.loss(batch)
    return host(total), {name: host(value) for name, value in per_task.items()}


def read_raw(path):
    """(arrays, JSON document) of a saved file, read with plain NumPy."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(arrays.pop(checkpoint.META_KEY).tobytes())


def write_raw(path, arrays, document):
    """Write an .npz with plain numpy.savez: how a foreign or tampered file is made."""
    meta = np.frombuffer(json.dumps(document).encode("utf-8"), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, __meta__=meta, **arrays)


@pytest.fixture
def saved(tmp_path):
    """(model, path) of a small saved conditioned model."""
    model = trained_looking_model(make_config())
    path = tmp_path / "model.npz"
    save(model, path)
    return model, path


# -- round trips ---------------------------------------------------------------------
@pytest.mark.parametrize("mode, dtype, continuous", [("conditioned", "float32", False), ("joint", "float64", False),
                                                     ("conditioned", "float64", True), ("joint", "float32", True)])
def test_round_trip_is_bit_exact(tmp_path, mode, dtype, continuous):
    config = make_config(mode, dtype, continuous)
    model = trained_looking_model(config)
    path = save(model, tmp_path / "model.npz")
    loaded = load(path)
    assert loaded.config == config
    original, restored = model.parameters(), loaded.parameters()
    assert list(restored) == list(original)
    for name, value in original.items():
        assert backend.array_module(restored[name]) is backend.get_array_module(), name
        assert restored[name].dtype == value.dtype == np.dtype(dtype), name
        assert np.array_equal(host(restored[name]), host(value)), name
    batch = make_batch(config)
    total, per_task = losses(model, batch)
    loaded_total, loaded_per_task = losses(loaded, batch)
    assert loaded_total.dtype == total.dtype and np.array_equal(loaded_total, total)
    assert all(np.array_equal(loaded_per_task[name], per_task[name]) for name in per_task)
    # The stored values matter: a fresh model from the same config (and seed) gives another loss.
    assert not np.array_equal(losses(MultiTaskTransformer(config), batch)[0], total)


def test_load_into_updates_the_same_arrays_in_place(saved):
    source, path = saved
    target = MultiTaskTransformer(make_config())
    arrays = target.parameters()
    before = {name: host(value).copy() for name, value in arrays.items()}
    assert load_into(target, path) == {}
    after = target.parameters()
    for name, value in source.parameters().items():
        assert after[name] is arrays[name], name
        assert np.array_equal(host(after[name]), host(value)), name
        assert not np.array_equal(host(after[name]), before[name]), name


def test_extra_round_trip(tmp_path):
    model = trained_looking_model(make_config())
    extra = {"step": 120, "lr": 3e-4, "history": [1.5, 1.25], "note": "größer", "nested": {"a": None, "b": True}}
    path = save(model, tmp_path / "model.npz", extra={**extra, "step": np.int64(120)})   # NumPy scalars welcome
    assert load_meta(path) == {"config": model.config.to_dict(), "extra": extra}
    assert load_into(MultiTaskTransformer(make_config()), path) == extra


def test_save_arrays_round_trip_keeps_every_dtype_and_shape(tmp_path):
    xp = backend.get_array_module()
    arrays = {"m.embedding.weight": randn(4, 3, dtype=np.float32),
              "transposed": randn(3, 5, seed=1).T,
              "count": backend.to_device(np.array(7, dtype=np.int64)),
              "flags": backend.to_device(np.array([True, False])),
              "empty": xp.zeros((0, 3), dtype=np.float16),
              "file": randn(2, seed=2),            # numpy.savez would take these names for its own arguments
              "allow_pickle": randn(2, seed=3)}
    meta = {"kind": "adamw", "step_count": 3, "betas": [0.9, 0.999]}
    save_arrays(tmp_path / "state.npz", arrays, meta)
    loaded, loaded_meta = load_arrays(tmp_path / "state.npz")
    assert loaded_meta == meta
    assert list(loaded) == list(arrays)
    for name, value in arrays.items():
        assert isinstance(loaded[name], np.ndarray), name
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        assert np.array_equal(loaded[name], host(value)), name


@pytest.mark.parametrize("as_str", [True, False])
def test_writes_exactly_the_given_path_and_nothing_else(tmp_path, as_str):
    model = trained_looking_model(make_config())
    path = tmp_path / "last.ckpt"
    assert save(model, str(path) if as_str else path) == path
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]     # no ".npz" appended, no temporary left
    save(model, path)                                       # overwriting works too
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]
    assert np.array_equal(host(load(path).parameters()[WQ]), host(model.parameters()[WQ]))


@pytest.mark.parametrize("failure, raised", [(OSError(28, "No space left on device"), CheckpointError),
                                             (KeyboardInterrupt(), KeyboardInterrupt)])
def test_a_failed_write_keeps_the_previous_checkpoint(saved, monkeypatch, failure, raised):
    model, path = saved
    previous = path.read_bytes()
    written = []
    real_write_array = np.lib.format.write_array

    def write_then_fail(*args, **kwargs):
        if len(written) == 2:
            raise failure
        written.append(1)
        return real_write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_then_fail)
    with pytest.raises(raised, match="No space left" if raised is CheckpointError else None):
        save(trained_looking_model(make_config(), seed=50), path)
    monkeypatch.undo()
    assert len(written) == 2
    assert sorted(os.listdir(path.parent)) == ["model.npz"]
    assert path.read_bytes() == previous
    assert np.array_equal(host(load(path).parameters()[WQ]), host(model.parameters()[WQ]))


# -- files that cannot be read -----------------------------------------------------------
def test_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint file at .*nothing.npz"):
        load(tmp_path / "nothing.npz")


def test_save_into_a_missing_folder(tmp_path):
    with pytest.raises(CheckpointError, match="folder .*not_there does not exist"):
        save(trained_looking_model(make_config()), tmp_path / "not_there" / "model.npz")
    assert os.listdir(tmp_path) == []


def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.npz is not a readable .npz archive: truncated"):
        load(path)


@pytest.mark.parametrize("content", [b"", b"hello, not a checkpoint\n", b"PK\x03\x04 garbage"])
def test_not_a_zip_at_all(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="model.npz is not a readable .npz archive"):
        load_arrays(path)


def test_a_single_npy_array(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.ones(3))
    with pytest.raises(CheckpointError, match="weights.npy holds a single array"):
        load(path)


def test_an_npz_without_meta(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, x=np.ones(3))
    with pytest.raises(CheckpointError, match="plain.npz is not a tinymtt checkpoint: it has no '__meta__'"):
        load(path)


@pytest.mark.parametrize("change, message", [
    ({"format": "other-checkpoint"}, "not a tinymtt checkpoint: format is 'other-checkpoint'"),
    ({"version": 2}, "format version 2, newer than this tinymtt reads"),
    ({"version": "1"}, "format version must be a positive integer"),
    ({"arrays": []}, "must hold the dicts 'arrays' and 'meta'"),
])
def test_a_foreign_or_newer_document(saved, change, message):
    _, path = saved
    arrays, document = read_raw(path)
    write_raw(path, arrays, {**document, **change})
    with pytest.raises(CheckpointError, match=message):
        load(path)


def test_meta_that_is_not_json(saved):
    _, path = saved
    arrays, _ = read_raw(path)
    with open(path, "wb") as handle:
        np.savez(handle, __meta__=np.frombuffer(b"{not json", dtype=np.uint8), **arrays)
    with pytest.raises(CheckpointError, match="model.npz: the '__meta__' entry is unreadable"):
        load(path)


def test_tampered_array_fails_its_checksum(saved):
    _, path = saved
    arrays, document = read_raw(path)
    arrays[WQ] = arrays[WQ].copy()
    arrays[WQ][1, 2] += 1                        # same shape and dtype, one value changed, old meta kept
    write_raw(path, arrays, document)
    with pytest.raises(CheckpointError, match=f"model.npz: checksum mismatch for array '{WQ}'"):
        load(path)


def test_flipped_byte_inside_the_file_names_the_array(saved):
    model, path = saved
    data = bytearray(path.read_bytes())
    start = bytes(data).find(host(model.parameters()[WQ]).tobytes())
    assert start > 0
    data[start + 17] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"array '{WQ}' is corrupted|checksum mismatch for array '{WQ}'"):
        load(path)


def test_table_of_contents_mismatch(saved):
    _, path = saved
    arrays, document = read_raw(path)
    arrays["stowaway"] = np.ones(2)
    del arrays[WQ]
    write_raw(path, arrays, document)
    with pytest.raises(CheckpointError, match=rf"listed but absent \['{WQ}'\], present but unlisted \['stowaway'\]"):
        load_arrays(path)


def test_recorded_shape_or_dtype_differs_from_the_stored_array(saved):
    _, path = saved
    arrays, document = read_raw(path)
    document["arrays"][WQ]["dtype"] = "float64"
    write_raw(path, arrays, document)
    with pytest.raises(CheckpointError, match=f"array '{WQ}' is float32 array of shape \\(8, 8\\), but"):
        load(path)


@pytest.mark.parametrize("listed_dtype, message", [("float64", "array 'x' is a pickled object array; refused"),
                                                   ("object", "array 'x' has dtype object; only numeric")])
def test_pickled_object_array_is_refused(tmp_path, listed_dtype, message):
    path = tmp_path / "evil.npz"
    document = {"format": "tinymtt-checkpoint", "version": 1, "meta": {},
                "arrays": {"x": {"shape": [1], "dtype": listed_dtype, "sha256": "0" * 64}}}
    write_raw(path, {"x": np.array([{"run": "code"}], dtype=object)}, document)   # savez pickles it
    with pytest.raises(CheckpointError, match=message):
        load_arrays(path)


# -- files that do not fit the model -------------------------------------------------------
def rewrite_parameters(path, change):
    """Save the model checkpoint at ``path`` again with ``change(arrays)`` applied (valid checksums)."""
    arrays, document = read_raw(path)
    change(arrays)
    save_arrays(path, arrays, document["meta"])


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop(WQ), rf"missing parameters \['{WQ}'\]"),
    (lambda a: a.update(stowaway=np.ones(2, np.float32)), r"unexpected parameters \['stowaway'\]"),
    (lambda a: a.update({WQ: np.ones((8, 4), np.float32)}), rf"'{WQ}' has shape \(8, 4\), the model needs \(8, 8\)"),
    (lambda a: a.update({WQ: a[WQ].astype(np.float64)}), f"'{WQ}' has dtype float64, the model needs float32"),
])
def test_parameters_that_do_not_fit_the_config(saved, change, message):
    model, path = saved
    rewrite_parameters(path, change)
    with pytest.raises(CheckpointError, match="does not fit the model its config builds: .*" + message):
        load(path)
    before = host(model.parameters()["embedding.weight"]).copy()
    with pytest.raises(CheckpointError, match=message):
        load_into(model, path)
    assert np.array_equal(host(model.parameters()["embedding.weight"]), before)   # all or nothing


def test_every_misfit_is_named_at_once(saved):
    _, path = saved
    bias = "encoder.blocks.0.attn.wq.bias"

    def change(arrays):
        del arrays[WQ]
        arrays["stowaway"] = np.ones(2, np.float32)
        arrays[bias] = np.ones(3, np.float32)

    rewrite_parameters(path, change)
    with pytest.raises(CheckpointError, match=rf"missing parameters \['{WQ}'\]; unexpected parameters "
                                              rf"\['stowaway'\]; '{bias}' has shape \(3,\)"):
        load(path)


def test_load_into_a_model_of_another_config(saved):
    _, path = saved
    other = MultiTaskTransformer(make_config(d_model=16, num_layers=2))
    with pytest.raises(CheckpointError, match=r"model.npz was saved from a different model config \(differing keys "
                                              r"\['d_model', 'num_layers'\]\): d_model: checkpoint 8, model 16"):
        load_into(other, path)


def test_load_of_an_arrays_only_file(tmp_path):
    path = save_arrays(tmp_path / "state.npz", {"x": np.ones(2)})
    with pytest.raises(CheckpointError, match="state.npz holds no model config"):
        load(path)


def test_load_with_an_invalid_stored_config(saved):
    _, path = saved
    arrays, document = read_raw(path)
    document["meta"]["config"]["d_model"] = 7
    save_arrays(path, arrays, document["meta"])
    with pytest.raises(CheckpointError, match="model.npz: the stored model config is invalid .*d_model"):
        load(path)


# -- bad arguments ---------------------------------------------------------------------
def test_bad_arguments(tmp_path):
    model = trained_looking_model(make_config())
    with pytest.raises(TypeError, match="model must be a MultiTaskTransformer, got dict"):
        save({}, tmp_path / "a.npz")
    with pytest.raises(TypeError, match="path must be a str or a pathlib.Path, got int"):
        save(model, 3)
    with pytest.raises(TypeError, match="extra must be a dict"):
        save(model, tmp_path / "a.npz", extra=[1, 2])
    with pytest.raises(TypeError, match="extra must be JSON-able .*set"):
        save(model, tmp_path / "a.npz", extra={"seen": {1, 2}})
    with pytest.raises(TypeError, match=r"arrays\['x'\] must be a NumPy or CuPy array, got list"):
        save_arrays(tmp_path / "a.npz", {"x": [1.0]})
    with pytest.raises(TypeError, match=r"arrays\['x'\] must have a numeric dtype .*object"):
        save_arrays(tmp_path / "a.npz", {"x": np.array([{}], dtype=object)})
    with pytest.raises(ValueError, match="array names must be non-empty strings other than '__meta__'"):
        save_arrays(tmp_path / "a.npz", {"__meta__": np.ones(2)})
    with pytest.raises(CheckpointError, match="that path is a folder"):
        save(model, tmp_path)
    assert os.listdir(tmp_path) == []
