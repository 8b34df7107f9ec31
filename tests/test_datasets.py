"""Tests of deepbreadth.datasets: IDX files, the shipped data, downloads, DataLoader.

No test touches the network: downloads go through file:// URLs or a patched
opener, and an autouse fixture fails any test that tries anything else.
"""
import gzip
import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deepbreadth.datasets import (
    ArrayDataset,
    DataLoader,
    fashion_mnist,
    idx,
    load_idx_dataset,
    mnist,
    shakespeare,
)
from deepbreadth.datasets.atomic import atomic_output
from deepbreadth.datasets.download import ChecksumError, DownloadError, cache_directory
from deepbreadth.datasets.idx import IDXFormatError, read_idx, write_idx

OFFICIAL_MNIST_TEST_CLASS_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Let urlopen open file:// URLs only."""
    real_urlopen = urllib.request.urlopen

    def local_only(url, *args, **kwargs):
        if not str(url).startswith("file:"):
            raise AssertionError(f"a test tried to reach the network: {url}")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Point the data cache at an empty per-test directory."""
    cache_root = tmp_path / "cache"
    monkeypatch.setenv("DEEPBREADTH_DATA", str(cache_root))
    return cache_root


@pytest.fixture(scope="module")
def mnist_data():
    return mnist.load_data()


def idx_header(type_code, *sizes):
    """An IDX header assembled by hand from the format's definition."""
    return bytes([0, 0, type_code, len(sizes)]) + b"".join(
        struct.pack(">I", size) for size in sizes
    )


def sha256_of(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


# --------------------------------------------------------------------- MNIST


def test_mnist_shapes_and_types_match_keras(mnist_data):
    (x_train, y_train), (x_test, y_test) = mnist_data
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8


def test_mnist_test_set_class_counts_are_the_official_ones(mnist_data):
    _, (_, y_test) = mnist_data
    assert np.bincount(y_test, minlength=10).tolist() == OFFICIAL_MNIST_TEST_CLASS_COUNTS


def test_mnist_pixels_span_the_byte_range_and_labels_cover_ten_classes(mnist_data):
    (x_train, y_train), _ = mnist_data
    assert x_train.min() == 0 and x_train.max() == 255
    assert sorted(np.unique(y_train).tolist()) == list(range(10))
    # Digits are drawn light on a dark background: most pixels are zero.
    assert (x_train == 0).mean() > 0.7


def test_mnist_arrays_are_writable_for_in_place_shuffles(mnist_data):
    (x_train, y_train), _ = mnist_data
    assert x_train.flags.writeable and y_train.flags.writeable


def test_mnist_verify_accepts_the_shipped_files():
    (x_train, _), _ = mnist.load_data(verify=True)
    assert x_train.shape == (60000, 28, 28)


def test_mnist_readme_records_a_sha256_for_each_shipped_file():
    recorded = mnist.recorded_sha256()
    names = {filename.removesuffix(".gz") for filename in mnist.FILES}
    assert set(recorded) == names
    assert all(len(digest) == 64 for digest in recorded.values())


def test_mnist_verify_rejects_a_wrong_recorded_checksum(tmp_path, monkeypatch):
    readme_text = mnist.README.read_text(encoding="utf-8")
    real_digest = mnist.recorded_sha256()["t10k-labels-idx1-ubyte"]
    wrong_digest = "0" * 64
    altered = tmp_path / "README.md"
    altered.write_text(readme_text.replace(real_digest, wrong_digest), encoding="utf-8")
    monkeypatch.setattr(mnist, "README", altered)
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz.*sha256 mismatch"):
        mnist.load_data(verify=True)


# ----------------------------------------------------------------------- IDX


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]
)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2), (0, 4)])
@pytest.mark.parametrize("filename", ["array.idx", "array.idx.gz"])
def test_idx_round_trip(tmp_path, dtype, shape, filename):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        array = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    else:
        array = (rng.standard_normal(shape) * 1e3).astype(dtype)
    path = tmp_path / filename
    write_idx(path, array)
    result = read_idx(path)
    assert result.dtype == np.dtype(dtype) and result.shape == shape
    np.testing.assert_array_equal(result, array)


@given(
    array=hnp.arrays(
        dtype=st.sampled_from(["u1", "i1", ">i2", "<i2", "i4", "f4", ">f8"]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    )
)
def test_idx_round_trip_through_a_file_object(tmp_path_factory, array):
    path = tmp_path_factory.mktemp("idx") / "array.idx"
    write_idx(path, array)
    with open(path, "rb") as file:
        result = read_idx(file)
    assert result.shape == array.shape
    assert result.dtype == array.dtype.newbyteorder("=") and result.dtype.isnative
    np.testing.assert_array_equal(result, array)  # NaNs compare equal here


def test_write_idx_produces_the_documented_bytes(tmp_path):
    path = tmp_path / "small.idx"
    write_idx(path, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8))
    assert path.read_bytes() == idx_header(0x08, 2, 3) + bytes([1, 2, 3, 4, 5, 6])


def test_write_idx_stores_multibyte_elements_big_endian(tmp_path):
    path = tmp_path / "shorts.idx"
    write_idx(path, np.array([0x0102, -2], dtype=np.int16))
    assert path.read_bytes() == idx_header(0x0B, 2) + b"\x01\x02\xff\xfe"


def test_read_idx_reads_a_file_built_by_hand():
    content = idx_header(0x0D, 2, 2) + struct.pack(">4f", 1.5, -2.0, 0.25, 8.0)
    result = read_idx(io.BytesIO(content))
    np.testing.assert_array_equal(result, np.array([[1.5, -2.0], [0.25, 8.0]], np.float32))
    assert result.dtype == np.float32 and result.dtype.isnative


def test_read_idx_recognises_gzip_by_content_not_name(tmp_path):
    path = tmp_path / "labels.bin"
    path.write_bytes(gzip.compress(idx_header(0x08, 3) + bytes([7, 8, 9])))
    np.testing.assert_array_equal(read_idx(path), [7, 8, 9])


def test_gzipped_files_written_twice_are_identical(tmp_path):
    array = np.arange(12, dtype=np.int32).reshape(3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def write_bytes(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_wrong_magic_number_is_reported_with_the_file_name(tmp_path):
    path = write_bytes(tmp_path, "bad.idx", b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(IDXFormatError, match=r"bad\.idx.*wrong magic number 0x12340801"):
        read_idx(path)


def test_unknown_type_code_is_a_wrong_magic_number(tmp_path):
    path = write_bytes(tmp_path, "odd.idx", idx_header(0x0A, 1) + b"\x00")
    with pytest.raises(IDXFormatError, match=r"odd\.idx.*0x00000A01"):
        read_idx(path)


def test_file_too_short_for_a_magic_number(tmp_path):
    path = write_bytes(tmp_path, "tiny.idx", b"\x00\x00")
    with pytest.raises(IDXFormatError, match=r"tiny\.idx.*expected, found 2 byte"):
        read_idx(path)


def test_truncated_header(tmp_path):
    path = write_bytes(tmp_path, "head.idx", idx_header(0x08, 5, 5)[:10])
    with pytest.raises(IDXFormatError, match=r"head\.idx.*8 bytes\) expected.*found 6 byte"):
        read_idx(path)


def test_zero_dimensions_are_rejected(tmp_path):
    path = write_bytes(tmp_path, "flat.idx", idx_header(0x08))
    with pytest.raises(IDXFormatError, match="0 dimensions"):
        read_idx(path)


def test_truncated_data_reports_expected_and_found_byte_counts(tmp_path):
    content = idx_header(0x08, 10, 28, 28) + bytes(10 * 28 * 28 - 5)
    path = write_bytes(tmp_path, "cut.idx", content)
    with pytest.raises(IDXFormatError, match=r"cut\.idx.*needs 7840 bytes.*found 7835"):
        read_idx(path)


def test_truncated_multibyte_data(tmp_path):
    path = write_bytes(tmp_path, "f8.idx", idx_header(0x0E, 3) + bytes(8 * 3 - 1))
    with pytest.raises(IDXFormatError, match="needs 24 bytes.*found 23"):
        read_idx(path)


def test_extra_bytes_after_the_data(tmp_path):
    path = write_bytes(tmp_path, "long.idx", idx_header(0x08, 4) + bytes(4 + 3))
    with pytest.raises(IDXFormatError, match=r"long\.idx: 3 extra byte.*declares 4.*found 7"):
        read_idx(path)


def test_wrong_dimension_count_names_both_magic_numbers(tmp_path):
    path = tmp_path / "labels.idx"
    write_idx(path, np.zeros(6, np.uint8))
    with pytest.raises(
        IDXFormatError, match=r"labels\.idx: expected 3 .*0x00000803.*found 1 .*0x00000801"
    ):
        read_idx(path, expected_ndim=3)


def test_truncated_gzip_stream(tmp_path):
    complete = gzip.compress(idx_header(0x08, 1000) + bytes(range(256)) * 4)
    path = write_bytes(tmp_path, "cut.gz", complete[: len(complete) // 2])
    with pytest.raises(IDXFormatError, match=r"cut\.gz.*gzip stream is damaged or cut short"):
        read_idx(path)


def test_gzip_missing_only_its_trailer(tmp_path):
    complete = gzip.compress(idx_header(0x08, 4) + b"\x01\x02\x03\x04")
    path = write_bytes(tmp_path, "trailer.gz", complete[:-8])
    with pytest.raises(IDXFormatError, match="gzip stream"):
        read_idx(path)


def test_gzip_with_a_corrupted_byte(tmp_path):
    rng = np.random.default_rng(1)
    payload = idx_header(0x08, 4096) + rng.integers(0, 4, 4096, dtype=np.uint8).tobytes()
    damaged = bytearray(gzip.compress(payload))
    damaged[len(damaged) // 2] ^= 0xFF
    path = write_bytes(tmp_path, "flip.gz", bytes(damaged))
    with pytest.raises(IDXFormatError, match=r"flip\.gz"):
        read_idx(path)


def test_a_header_declaring_an_impossible_size_is_rejected(tmp_path):
    path = write_bytes(tmp_path, "huge.idx", idx_header(0x0E, 2**32 - 1, 2**32 - 1, 2**32 - 1))
    with pytest.raises(IDXFormatError, match=r"huge\.idx"):
        read_idx(path)


def test_text_mode_file_objects_are_refused(tmp_path):
    path = tmp_path / "a.idx"
    write_idx(path, np.zeros(3, np.uint8))
    with open(path, encoding="latin-1") as text_file:
        with pytest.raises(TypeError, match="'rb'"):
            read_idx(text_file)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.complex64, np.uint16])
def test_write_idx_refuses_types_the_format_lacks(tmp_path, dtype):
    with pytest.raises(IDXFormatError, match="cannot store"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype))
    assert os.listdir(tmp_path) == []


def test_write_idx_refuses_a_scalar(tmp_path):
    with pytest.raises(IDXFormatError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "x.idx", np.uint8(3))


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "kept.idx"
    write_idx(path, np.arange(3, dtype=np.uint8))
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic_output(path) as file:
            file.write(b"half a file")
            raise RuntimeError("disk full")
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["kept.idx"]


# ------------------------------------------------------- finding and fetching


def make_mirror(directory, arrays):
    """Write {filename: array} as gzipped IDX files; return (file URL, sha256s)."""
    directory.mkdir(parents=True, exist_ok=True)
    digests = {}
    for filename, array in arrays.items():
        write_idx(directory / filename, array)
        digests[filename] = sha256_of(directory / filename)
    return directory.as_uri(), digests


TOY_ARRAYS = {
    "toy-images-idx3-ubyte.gz": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
    "toy-labels-idx1-ubyte.gz": np.array([4, 1], dtype=np.uint8),
}


def test_cache_directory_follows_the_environment_variable(private_cache):
    assert cache_directory("toy") == os.path.join(str(private_cache), "toy")


def test_missing_files_error_says_which_files_go_where(tmp_path, private_cache):
    given_directory = tmp_path / "mine"
    with pytest.raises(FileNotFoundError) as raised:
        load_idx_dataset("toy", TOY_ARRAYS, path=given_directory, urls=["file:///x"])
    message = str(raised.value)
    assert "toy-images-idx3-ubyte.gz" in message and "toy-labels-idx1-ubyte.gz" in message
    assert f"Put the file(s) in {given_directory}" in message
    assert str(private_cache / "toy") in message
    assert "download=True" in message


def test_fashion_mnist_offline_error_names_the_cache_and_the_download_option(private_cache):
    with pytest.raises(FileNotFoundError) as raised:
        fashion_mnist.load_data()
    message = str(raised.value)
    assert f"Put the file(s) in {private_cache / 'fashion_mnist'}" in message
    for filename in fashion_mnist.FILES:
        assert filename in message
    assert "download=True" in message


def test_files_are_found_in_the_given_directory_before_the_cache(tmp_path, private_cache):
    make_mirror(private_cache / "toy", {name: a + 1 for name, a in TOY_ARRAYS.items()})
    make_mirror(tmp_path / "mine", TOY_ARRAYS)
    images, labels = load_idx_dataset("toy", TOY_ARRAYS, path=tmp_path / "mine")
    np.testing.assert_array_equal(labels, [4, 1])
    images, labels = load_idx_dataset("toy", TOY_ARRAYS)
    np.testing.assert_array_equal(labels, [5, 2])


def test_download_through_a_file_url_fills_the_cache(tmp_path, private_cache):
    mirror_url, digests = make_mirror(tmp_path / "mirror", TOY_ARRAYS)
    dead_mirror = (tmp_path / "no-such-mirror").as_uri()
    images, labels = load_idx_dataset(
        "toy", TOY_ARRAYS, download=True, urls=[dead_mirror, mirror_url], sha256=digests
    )
    np.testing.assert_array_equal(images, TOY_ARRAYS["toy-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(labels, TOY_ARRAYS["toy-labels-idx1-ubyte.gz"])
    assert sorted(os.listdir(private_cache / "toy")) == sorted(TOY_ARRAYS)
    # Now cached: found again with downloads off and no mirror at all.
    _, labels_again = load_idx_dataset("toy", TOY_ARRAYS)
    np.testing.assert_array_equal(labels_again, [4, 1])


def test_download_goes_into_the_given_directory(tmp_path, private_cache):
    mirror_url, digests = make_mirror(tmp_path / "mirror", TOY_ARRAYS)
    target = tmp_path / "mine"
    load_idx_dataset("toy", TOY_ARRAYS, path=target, download=True, urls=[mirror_url])
    assert sorted(os.listdir(target)) == sorted(TOY_ARRAYS)
    assert not (private_cache / "toy").exists()


def test_download_with_a_wrong_sha256_leaves_nothing_behind(tmp_path, private_cache):
    mirror_url, digests = make_mirror(tmp_path / "mirror", TOY_ARRAYS)
    wrong = dict(digests, **{"toy-labels-idx1-ubyte.gz": "ab" * 32})
    with pytest.raises(DownloadError, match="sha256 mismatch: expected abab"):
        load_idx_dataset("toy", TOY_ARRAYS, download=True, urls=[mirror_url], sha256=wrong)
    assert "toy-labels-idx1-ubyte.gz" not in os.listdir(private_cache / "toy")
    assert not [name for name in os.listdir(private_cache / "toy") if name.endswith(".tmp")]


def test_a_download_that_breaks_off_leaves_nothing_behind(monkeypatch, private_cache):
    class BreaksOff(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(10)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: BreaksOff(bytes(100)))
    with pytest.raises(DownloadError, match="connection reset"):
        load_idx_dataset("toy", TOY_ARRAYS, download=True, urls=["https://mirror.invalid"])
    assert os.listdir(private_cache / "toy") == []


def test_fashion_mnist_checks_downloads_against_its_published_sha256(
    tmp_path, private_cache, monkeypatch
):
    # MNIST's files have Fashion-MNIST's names and formats but other bytes:
    # every one must be refused, and none may stay in the cache.
    mirror = tmp_path / "mirror"
    shutil.copytree(mnist.DATA_DIRECTORY, mirror)
    monkeypatch.setattr(fashion_mnist, "URLS", (mirror.as_uri(),))
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fashion_mnist.load_data(download=True)
    assert os.listdir(private_cache / "fashion_mnist") == []


def test_fashion_mnist_reads_files_from_a_given_directory(tmp_path):
    # Fashion-MNIST's files have MNIST's names and shapes, so MNIST's files
    # stand in for them here.
    for filename in mnist.FILES:
        shutil.copy(mnist.DATA_DIRECTORY / filename, tmp_path / filename)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(path=tmp_path)
    assert x_train.shape == (60000, 28, 28) and y_test.shape == (10000,)
    assert np.bincount(y_test).tolist() == OFFICIAL_MNIST_TEST_CLASS_COUNTS


def test_fashion_mnist_rejects_files_of_the_wrong_shape(tmp_path):
    for filename, array in [
        (mnist.TRAIN_IMAGES, np.zeros((5, 28, 28), np.uint8)),
        (mnist.TRAIN_LABELS, np.zeros(5, np.uint8)),
        (mnist.TEST_IMAGES, np.zeros((5, 28, 28), np.uint8)),
        (mnist.TEST_LABELS, np.zeros(5, np.uint8)),
    ]:
        write_idx(tmp_path / filename, array)
    expected = r"training set: images .*\(60000, 28, 28\).*\(5, 28, 28\)"
    with pytest.raises(IDXFormatError, match=expected):
        fashion_mnist.load_data(path=tmp_path)


def test_published_fashion_mnist_checksums_are_well_formed():
    assert set(fashion_mnist.SHA256) == set(fashion_mnist.FILES)
    for digest in fashion_mnist.SHA256.values():
        assert len(digest) == 64 and int(digest, 16) >= 0


# ---------------------------------------------------------------- Shakespeare


def test_shakespeare_split_is_by_position_and_loses_nothing():
    train_text, validation_text = shakespeare.load_data()
    corpus = open(shakespeare.CORPUS_PATH, encoding="ascii").read()
    assert train_text + validation_text == corpus
    assert len(corpus) == 940_218
    assert len(validation_text) == round(0.1 * len(corpus))
    assert train_text.startswith("HAMLET")


def test_shakespeare_ids_and_vocabulary():
    train_ids, validation_ids, vocabulary = shakespeare.load_data(as_ids=True)
    train_text, validation_text = shakespeare.load_data()
    assert len(vocabulary) == 76
    assert list(vocabulary.chars) == sorted(set(train_text + validation_text))
    assert train_ids.dtype == np.int64 and train_ids.ndim == 1
    assert 0 <= train_ids.min() and train_ids.max() < 76
    assert vocabulary.decode(train_ids) == train_text
    assert vocabulary.decode(validation_ids) == validation_text
    assert all(vocabulary.chars[i] == c for c, i in vocabulary.char_to_id.items())


def test_vocabulary_encode_gives_the_documented_ids():
    vocabulary = shakespeare.Vocabulary.from_text("hello world")
    assert vocabulary.chars == (" ", "d", "e", "h", "l", "o", "r", "w")
    assert vocabulary.encode("hold").tolist() == [3, 5, 4, 1]
    assert vocabulary.decode([7, 5, 6, 4, 1]) == "world"
    assert vocabulary.decode([]) == ""


@given(st.text(alphabet="abcxyz \n!é\u4e2d", max_size=50))
def test_vocabulary_round_trip(text):
    vocabulary = shakespeare.Vocabulary.from_text(text + "a")
    assert vocabulary.decode(vocabulary.encode(text)) == text


def test_vocabulary_errors_name_the_culprit():
    vocabulary = shakespeare.Vocabulary.from_text("abc")
    with pytest.raises(ValueError, match=r"'z' \(at position 2\)"):
        vocabulary.encode("abz")
    with pytest.raises(ValueError, match=r"'\u00e9'"):
        vocabulary.encode("\u00e9")
    with pytest.raises(ValueError, match=r"id 3 is outside"):
        vocabulary.decode([0, 3])
    with pytest.raises(ValueError, match=r"id -1 is outside"):
        vocabulary.decode([-1])


def test_shakespeare_validation_fraction():
    train_text, validation_text = shakespeare.load_data(validation_fraction=0.0)
    assert validation_text == "" and len(train_text) == 940_218
    train_text, validation_text = shakespeare.load_data(validation_fraction=0.5)
    assert len(train_text) == len(validation_text) == 470_109
    for bad in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match="validation_fraction"):
            shakespeare.load_data(validation_fraction=bad)


# ----------------------------------------------------------------- DataLoader


def one_epoch(loader):
    return [tuple(part.copy() for part in batch) for batch in loader]


def test_each_epoch_visits_every_sample_exactly_once_with_its_label():
    x = np.arange(103).reshape(103, 1) * np.ones((1, 3))
    y = np.arange(103) * 10
    loader = DataLoader(x, y, batch_size=8, seed=0)
    for _ in range(3):
        batches = one_epoch(loader)
        seen = np.concatenate([x_batch[:, 0] for x_batch, _ in batches]).astype(int)
        assert sorted(seen.tolist()) == list(range(103))
        for x_batch, y_batch in batches:
            np.testing.assert_array_equal(y_batch, x_batch[:, 0] * 10)


def test_shuffling_changes_the_order_between_epochs():
    loader = DataLoader(np.arange(50), batch_size=50, seed=1)
    first, second = one_epoch(loader)[0][0], one_epoch(loader)[0][0]
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, np.arange(50))


def test_without_shuffle_the_order_is_the_data_order():
    loader = DataLoader(np.arange(10), batch_size=4, shuffle=False)
    assert [batch[0].tolist() for batch in loader] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_the_same_seed_replays_the_same_epochs():
    x, y = np.arange(40), np.arange(40) % 3
    first = DataLoader(x, y, batch_size=6, seed=123)
    second = DataLoader(x, y, batch_size=6, seed=123)
    other = DataLoader(x, y, batch_size=6, seed=124)
    for _ in range(3):
        epoch_a, epoch_b, epoch_c = one_epoch(first), one_epoch(second), one_epoch(other)
        for batch_a, batch_b in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(batch_a[0], batch_b[0])
            np.testing.assert_array_equal(batch_a[1], batch_b[1])
        assert not np.array_equal(
            np.concatenate([b[0] for b in epoch_a]), np.concatenate([b[0] for b in epoch_c])
        )


def test_last_partial_batch_is_kept_unless_drop_last():
    kept = DataLoader(np.arange(10), batch_size=4, seed=0)
    assert len(kept) == 3
    assert [len(batch[0]) for batch in kept] == [4, 4, 2]
    dropped = DataLoader(np.arange(10), batch_size=4, drop_last=True, seed=0)
    assert len(dropped) == 2
    assert [len(batch[0]) for batch in dropped] == [4, 4]


def test_a_batch_larger_than_the_data_gives_one_batch():
    loader = DataLoader(np.arange(5), batch_size=64)
    assert len(loader) == 1
    assert sorted(one_epoch(loader)[0][0].tolist()) == [0, 1, 2, 3, 4]


def test_batches_are_tuples_of_numpy_arrays():
    (x_batch,) = next(iter(DataLoader([[1, 2], [3, 4]], batch_size=2, shuffle=False)))
    assert isinstance(x_batch, np.ndarray) and x_batch.tolist() == [[1, 2], [3, 4]]
    batch = next(iter(DataLoader(np.zeros((4, 2)), np.ones(4), batch_size=3)))
    assert isinstance(batch, tuple) and len(batch) == 2
    assert batch[0].shape == (3, 2) and batch[1].shape == (3,)


@given(
    samples=st.integers(1, 60),
    batch_size=st.integers(1, 70),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_batch_sizes_and_coverage(samples, batch_size, drop_last, seed):
    if drop_last and batch_size > samples:
        with pytest.raises(ValueError, match="no batches"):
            DataLoader(np.arange(samples), batch_size=batch_size, drop_last=drop_last)
        return
    loader = DataLoader(np.arange(samples), batch_size=batch_size, drop_last=drop_last, seed=seed)
    sizes = [len(batch[0]) for batch in loader]
    assert len(sizes) == len(loader)
    assert all(size == batch_size for size in sizes[:-1])
    seen = np.concatenate([batch[0] for batch in loader])
    assert len(set(seen.tolist())) == len(seen)
    if drop_last:
        assert len(seen) == samples - samples % batch_size
    else:
        assert sorted(seen.tolist()) == list(range(samples))


def test_array_dataset_holds_several_aligned_arrays():
    dataset = ArrayDataset(np.arange(6), np.arange(6) * 2, np.arange(12).reshape(6, 2))
    assert len(dataset) == 6
    a, b, c = dataset[np.array([4, 1])]
    assert a.tolist() == [4, 1] and b.tolist() == [8, 2] and c.tolist() == [[8, 9], [2, 3]]
    batches = list(DataLoader(dataset, batch_size=4, shuffle=False))
    assert len(batches) == 2 and len(batches[0]) == 3


def test_loader_errors_are_clear():
    with pytest.raises(ValueError, match="x: 5 .*y: 4"):
        DataLoader(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="array 0: 3, array 1: 2"):
        ArrayDataset(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="no samples"):
        DataLoader(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="scalar"):
        DataLoader(np.float32(1.0))
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size must be at least 1"):
            DataLoader(np.zeros(4), batch_size=bad)
    for bad in (2.5, True, "8"):
        with pytest.raises(TypeError, match="batch_size must be an integer"):
            DataLoader(np.zeros(4), batch_size=bad)
    with pytest.raises(ValueError, match="no batches"):
        DataLoader(np.zeros(3), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="not both"):
        DataLoader(ArrayDataset(np.zeros(3)), np.zeros(3))


# ----------------------------------------------------------------- the package


def test_importing_the_package_loads_no_submodule_and_no_data():
    code = (
        "import sys, deepbreadth.datasets as d; "
        "print(sorted(m for m in sys.modules if m.startswith('deepbreadth.datasets.')))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_package_exposes_its_names_lazily():
    import deepbreadth.datasets as datasets

    assert datasets.mnist is mnist and datasets.idx is idx
    assert datasets.DataLoader is DataLoader and datasets.ArrayDataset is ArrayDataset
    with pytest.raises(AttributeError, match="no attribute 'cifar10'"):
        datasets.cifar10
