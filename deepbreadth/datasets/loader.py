"""Mini-batches from in-memory NumPy arrays.

    loader = DataLoader(x_train, y_train, batch_size=64, seed=0)
    for epoch in range(epochs):
        for x_batch, y_batch in loader:
            ...

Batches are NumPy arrays; turning them into Tensors is the training loop's job,
which keeps this module free of the autograd layer.
"""
import math
import numbers

import numpy as np


class ArrayDataset:
    """Several arrays whose first axis indexes the same samples.

    ``dataset[i]`` is the tuple of the arrays' i-th samples; ``i`` may also be
    an array of indices, giving a tuple of batches.
    """

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("ArrayDataset needs at least one array")
        arrays = tuple(np.asarray(array) for array in arrays)
        for position, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(
                    f"array {position} is a scalar; each array needs a first "
                    "axis that indexes the samples"
                )
        lengths = [len(array) for array in arrays]
        if len(set(lengths)) > 1:
            described = ", ".join(
                f"array {position}: {length}" for position, length in enumerate(lengths)
            )
            raise ValueError(
                f"the arrays must hold the same number of samples, found {described}"
            )
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, index):
        return tuple(array[index] for array in self.arrays)


class DataLoader:
    """Iterate over ``(x_batch,)`` or ``(x_batch, y_batch)`` tuples, one epoch per loop.

    ``x`` may be an array (with ``y`` an array of labels, or None) or an
    ``ArrayDataset``.  With ``shuffle=True`` every epoch visits the samples in
    a new order; ``seed`` makes the sequence of orders reproducible.  The last
    batch is smaller when ``batch_size`` does not divide the sample count,
    unless ``drop_last=True`` leaves it out.  ``len(loader)`` is the number of
    batches per epoch.
    """

    def __init__(self, x, y=None, batch_size=32, shuffle=True, drop_last=False, seed=None):
        self.dataset = self._as_dataset(x, y)
        self.batch_size = self._checked_batch_size(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        # One generator for the loader's life: epochs differ from one another,
        # yet the same seed replays the same sequence of epochs.
        self._random = np.random.default_rng(seed)
        if len(self.dataset) == 0:
            raise ValueError("DataLoader got no samples: the arrays are empty")
        if drop_last and len(self) == 0:
            raise ValueError(
                f"drop_last=True with batch_size={batch_size} and only "
                f"{len(self.dataset)} samples would give no batches at all; "
                "lower batch_size or set drop_last=False"
            )

    @staticmethod
    def _as_dataset(x, y):
        if isinstance(x, ArrayDataset):
            if y is not None:
                raise ValueError(
                    "pass labels either inside the ArrayDataset or as y, not both"
                )
            return x
        if y is None:
            return ArrayDataset(x)
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim > 0 and y.ndim > 0 and len(x) != len(y):
            raise ValueError(
                f"x and y must hold the same number of samples, found x: {len(x)} "
                f"(shape {x.shape}), y: {len(y)} (shape {y.shape})"
            )
        return ArrayDataset(x, y)

    @staticmethod
    def _checked_batch_size(batch_size):
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
            raise TypeError(f"batch_size must be an integer, found {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, found {batch_size}")
        return int(batch_size)

    def __len__(self):
        samples = len(self.dataset)
        if self.drop_last:
            return samples // self.batch_size
        return math.ceil(samples / self.batch_size)

    def __iter__(self):
        order = self._epoch_order()
        for batch_number in range(len(self)):
            start = batch_number * self.batch_size
            yield self.dataset[order[start : start + self.batch_size]]

    def _epoch_order(self):
        """The sample indices in this epoch's order."""
        if self.shuffle:
            return self._random.permutation(len(self.dataset))
        return np.arange(len(self.dataset))
