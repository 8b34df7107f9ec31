"""The MNIST handwritten digits, shipped with deepbreadth: no download needed.

    (x_train, y_train), (x_test, y_test) = mnist.load_data()

gives what ``keras.datasets.mnist.load_data()`` gives: 60,000 training and
10,000 test images as uint8 arrays of shape (n, 28, 28) with values 0-255, and
uint8 labels 0-9 of shape (n,).  The files are the original IDX files, gzipped,
in ``deepbreadth/datasets/data/``; their source and license are in the README
there.
"""
import gzip
import re
from pathlib import Path

from deepbreadth.datasets.download import check_sha256, sha256_of_stream
from deepbreadth.datasets.idx import IDXFormatError, read_idx

DATA_DIRECTORY = Path(__file__).resolve().parent / "data"
README = DATA_DIRECTORY / "README.md"

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

TRAIN_COUNT = 60_000
TEST_COUNT = 10_000
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


def load_data(verify=False):
    """Return ``(x_train, y_train), (x_test, y_test)`` as uint8 NumPy arrays.

    With ``verify=True`` the sha256 of each uncompressed file is first checked
    against the value recorded in ``data/README.md``; that reads every file a
    second time, so it is off by default (the IDX reader already rejects
    truncated or malformed files).
    """
    if verify:
        verify_shipped_files()
    x_train = read_idx(DATA_DIRECTORY / TRAIN_IMAGES, expected_ndim=3)
    y_train = read_idx(DATA_DIRECTORY / TRAIN_LABELS, expected_ndim=1)
    x_test = read_idx(DATA_DIRECTORY / TEST_IMAGES, expected_ndim=3)
    y_test = read_idx(DATA_DIRECTORY / TEST_LABELS, expected_ndim=1)
    check_images_and_labels(x_train, y_train, TRAIN_COUNT, "MNIST training set")
    check_images_and_labels(x_test, y_test, TEST_COUNT, "MNIST test set")
    return (x_train, y_train), (x_test, y_test)


def check_images_and_labels(images, labels, expected_count, description):
    """Check the shapes, types and label range of an MNIST-style split.

    Shared by the MNIST look-alikes (Fashion-MNIST), whose splits have the
    same sizes.
    """
    expected_images = (expected_count, *IMAGE_SHAPE)
    if images.shape != expected_images or images.dtype.name != "uint8":
        raise IDXFormatError(
            f"{description}: images should be uint8 of shape {expected_images}, "
            f"found {images.dtype.name} of shape {images.shape}"
        )
    if labels.shape != (expected_count,) or labels.dtype.name != "uint8":
        raise IDXFormatError(
            f"{description}: labels should be uint8 of shape ({expected_count},), "
            f"found {labels.dtype.name} of shape {labels.shape}"
        )
    if labels.max() >= NUM_CLASSES:
        raise IDXFormatError(
            f"{description}: labels should lie in [0, {NUM_CLASSES}), "
            f"found {labels.max()}"
        )


def verify_shipped_files():
    """Check each shipped file's uncompressed sha256 against the README's record."""
    recorded = recorded_sha256()
    for filename in FILES:
        uncompressed_name = filename.removesuffix(".gz")
        if uncompressed_name not in recorded:
            raise LookupError(f"{README}: no sha256 recorded for {uncompressed_name}")
        with gzip.open(DATA_DIRECTORY / filename, "rb") as stream:
            actual = sha256_of_stream(stream)
        check_sha256(actual, recorded[uncompressed_name], DATA_DIRECTORY / filename)


def recorded_sha256():
    """Map uncompressed file name -> sha256, as listed in the data README.

    The README is the one record of the checksums, for people and for this
    check alike; its lines read ``<file name> <64 hex digits>``.
    """
    text = README.read_text(encoding="utf-8")
    pairs = re.findall(r"([\w.-]+-ubyte)`?\s+`?([0-9a-f]{64})\b", text)
    return dict(pairs)
