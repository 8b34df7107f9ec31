"""A Shakespeare corpus for character-level language models, shipped with deepbreadth.

    train_text, validation_text = shakespeare.load_data()
    train_ids, validation_ids, vocabulary = shakespeare.load_data(as_ids=True)

Seven plays, about 940,000 characters of plain ASCII (76 distinct characters).
Source and license: ``data/README.md``.
"""
from pathlib import Path

import numpy as np

CORPUS_PATH = Path(__file__).resolve().parent / "data" / "shakespeare.txt"

# NumPy's default integer: what indexing and embedding lookups expect.
ID_DTYPE = np.int64


class Vocabulary:
    """A fixed mapping between characters and integer ids 0 .. len-1.

    ``chars[i]`` is the character with id ``i``; ``char_to_id`` is the inverse.
    """

    def __init__(self, chars):
        chars = tuple(chars)
        if len(set(chars)) != len(chars):
            raise ValueError("a vocabulary lists each character once; found repeats")
        if any(len(char) != 1 for char in chars):
            raise ValueError("a vocabulary holds single characters")
        self.chars = chars
        self.char_to_id = {char: index for index, char in enumerate(chars)}
        self._id_of_code_point = self._lookup_table(chars)

    @classmethod
    def from_text(cls, text):
        """The vocabulary of every distinct character in ``text``, sorted."""
        return cls(sorted(set(text)))

    def __len__(self):
        return len(self.chars)

    def __repr__(self):
        return f"Vocabulary({len(self)} characters: {''.join(self.chars)!r})"

    @staticmethod
    def _lookup_table(chars):
        """An array mapping a character's code point to its id (-1: not in it)."""
        table = np.full(max(map(ord, chars), default=-1) + 1, -1, dtype=ID_DTYPE)
        for index, char in enumerate(chars):
            table[ord(char)] = index
        return table

    def encode(self, text):
        """The ids of the characters of ``text``, as a 1-D int64 array."""
        # Turning the text into code points and indexing a table does a
        # million characters in milliseconds; a Python loop takes a tenth of a
        # second or more.
        code_points = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
        known = code_points < len(self._id_of_code_point)
        ids = np.full(len(code_points), -1, dtype=ID_DTYPE)
        ids[known] = self._id_of_code_point[code_points[known]]
        if (ids < 0).any():
            position = int(np.argmax(ids < 0))
            raise ValueError(
                f"character {text[position]!r} (at position {position}) is not in "
                f"the vocabulary of {len(self)} characters"
            )
        return ids

    def decode(self, ids):
        """The text spelled by a sequence of ids (list or integer array)."""
        ids = np.asarray(ids)
        if ids.size == 0:
            return ""
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"decode expects a 1-D sequence of integer ids, found "
                f"{ids.dtype.name} of shape {ids.shape}"
            )
        if ids.min() < 0 or ids.max() >= len(self):
            bad = ids[(ids < 0) | (ids >= len(self))][0]
            raise ValueError(f"id {bad} is outside the vocabulary's range [0, {len(self)})")
        return "".join(self.chars[index] for index in ids.tolist())


def load_data(as_ids=False, validation_fraction=0.1):
    """Return the corpus split by position into training and validation parts.

    The last ``validation_fraction`` of the text is the validation part (a
    split by position, not at random, so validation is text the model has not
    seen even in overlapping windows).

    Returns ``(train_text, validation_text)`` as strings, or with
    ``as_ids=True`` ``(train_ids, validation_ids, vocabulary)``: int64 id
    arrays and the ``Vocabulary`` of the whole corpus (so that every
    validation character has an id).
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must lie in [0, 1), found {validation_fraction}"
        )
    # newline="" keeps the file's characters exactly as they are.
    with open(CORPUS_PATH, encoding="ascii", newline="") as file:
        text = file.read()
    split = len(text) - int(round(len(text) * validation_fraction))
    train_text, validation_text = text[:split], text[split:]
    if not as_ids:
        return train_text, validation_text
    vocabulary = Vocabulary.from_text(text)
    return vocabulary.encode(train_text), vocabulary.encode(validation_text), vocabulary
