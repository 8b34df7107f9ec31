"""Fashion-MNIST: Zalando's article images, a drop-in replacement for MNIST.

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(download=True)

Same shapes and types as MNIST (uint8 images (n, 28, 28), uint8 labels 0-9),
60,000 training and 10,000 test examples.  The data is not shipped with
deepbreadth: it is read from a directory you name or from the cache
(``$DEEPBREADTH_DATA/fashion_mnist`` or ``~/.deepbreadth/datasets/fashion_mnist``),
and downloaded there only when you pass ``download=True``.

Fashion-MNIST is by Han Xiao, Kashif Rasul and Roland Vollgraf (Zalando
Research, arXiv:1708.07747), under the MIT license.
"""
from deepbreadth.datasets.download import load_idx_dataset
from deepbreadth.datasets.mnist import (
    TEST_COUNT,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_COUNT,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    check_images_and_labels,
)

NAME = "fashion_mnist"

# The official file names, the same as MNIST's.
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# Mirrors, tried in order: the project's own download site, its repository,
# and the copy Keras downloads from.  The first serves plain http only; the
# sha256 check below is what guards every download's integrity.
URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion",
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets",
)

# sha256 of the gzipped files as published (26,421,880 bytes for the training
# images).  They agree with the MD5 sums in the project's README.
SHA256 = {
    TRAIN_IMAGES: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    TRAIN_LABELS: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    TEST_IMAGES: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    TEST_LABELS: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def load_data(path=None, download=False):
    """Return ``(x_train, y_train), (x_test, y_test)`` as uint8 NumPy arrays.

    ``path``: a directory holding the four official ``.gz`` files; looked in
    before the cache.  ``download=True``: fetch missing files from ``URLS``
    (into ``path`` if given, else into the cache), checking each against
    ``SHA256``.  Without it, missing files raise ``FileNotFoundError`` saying
    which files to put where.
    """
    x_train, y_train, x_test, y_test = load_idx_dataset(
        NAME, FILES, path=path, download=download, urls=URLS, sha256=SHA256
    )
    check_images_and_labels(x_train, y_train, TRAIN_COUNT, "Fashion-MNIST training set")
    check_images_and_labels(x_test, y_test, TEST_COUNT, "Fashion-MNIST test set")
    return (x_train, y_train), (x_test, y_test)
