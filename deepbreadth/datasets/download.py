"""Finding dataset files on disk, and fetching them when asked to.

Only MNIST and the Shakespeare corpus ship inside the package.  Other data sets
live in a directory the user names, or in a cache directory:

    $DEEPBREADTH_DATA/<name>              when that variable is set
    ~/.deepbreadth/datasets/<name>        otherwise

Each data set gets its own subdirectory because several share file names (MNIST
and Fashion-MNIST both have ``train-images-idx3-ubyte.gz``).

Nothing is downloaded unless the caller passes ``download=True``: a library that
reaches for the network on its own surprises people on trains and clusters.
A download is checked against its sha256 (when one is known) before it is
given its final name, so the cache never holds a partial or wrong file.
"""
import hashlib
import os
import sys
import urllib.request

from deepbreadth.datasets.atomic import atomic_output
from deepbreadth.datasets.idx import read_idx

DATA_DIRECTORY_VARIABLE = "DEEPBREADTH_DATA"
DOWNLOAD_TIMEOUT_SECONDS = 60
CHUNK_BYTES = 1 << 20


class ChecksumError(ValueError):
    """A file's sha256 is not the one recorded for it."""


class DownloadError(OSError):
    """No mirror delivered a file (each mirror's reason is in the message)."""


def cache_directory(name):
    """The directory where data set ``name`` is cached (it may not exist yet)."""
    root = os.environ.get(DATA_DIRECTORY_VARIABLE) or os.path.join(
        os.path.expanduser("~"), ".deepbreadth", "datasets"
    )
    return os.path.join(root, name)


def load_idx_dataset(name, files, path=None, download=False, urls=(), sha256=None):
    """Read the IDX files of data set ``name``; return their arrays, in order.

    Each file is looked for first in ``path`` (when given), then in
    ``cache_directory(name)``.  Files found nowhere raise ``FileNotFoundError``
    that lists them and where to put them, unless ``download=True``: then each
    is fetched from the first of ``urls`` (base URLs of mirrors, tried in
    order) that delivers it, into ``path`` if given, else into the cache.

    ``sha256`` optionally maps file names to the hex sha256 of the file as
    downloaded (for ``.gz`` files: of the compressed bytes).  It is checked on
    download only; files already on disk are trusted, since they can only have
    got there complete (downloads are written atomically) or by the user's hand.
    A file without a recorded sha256 is downloaded unchecked, apart from the
    IDX format checks that every read makes.
    """
    files = list(files)
    if not files:
        raise ValueError(f"load_idx_dataset('{name}'): no file names given")
    search_directories = [cache_directory(name)]
    if path is not None:
        search_directories.insert(0, os.fspath(path))
    found = {filename: find_file(filename, search_directories) for filename in files}
    missing = [filename for filename in files if found[filename] is None]
    if missing and not download:
        raise FileNotFoundError(
            _missing_files_message(name, missing, search_directories, urls)
        )
    for filename in missing:
        expected_sha256 = (sha256 or {}).get(filename)
        found[filename] = download_file(
            filename, urls, search_directories[0], expected_sha256
        )
    return tuple(read_idx(found[filename]) for filename in files)


def find_file(filename, directories):
    """The path of ``filename`` in the first directory holding it, else None."""
    for directory in directories:
        candidate = os.path.join(directory, filename)
        if os.path.isfile(candidate):
            return candidate
    return None


def _missing_files_message(name, missing, search_directories, urls):
    target = search_directories[0]
    lines = [
        f"data set '{name}': {len(missing)} file(s) not found: {', '.join(missing)}",
        f"Looked in: {', '.join(search_directories)}",
    ]
    if len(search_directories) == 1:
        lines.append(
            f"Put the file(s) in {target} (or in a directory passed as path=...)"
        )
    else:
        lines.append(f"Put the file(s) in {target}")
    if urls:
        lines.append(
            f"or pass download=True to fetch them into {target} from "
            + " or ".join(urls)
        )
    lines.append(
        f"(the cache is ${DATA_DIRECTORY_VARIABLE}/{name} when that variable is "
        "set, else ~/.deepbreadth/datasets/" + name + ")"
    )
    return "\n".join(lines)


def download_file(filename, base_urls, directory, expected_sha256=None):
    """Fetch ``filename`` from the first mirror that delivers it intact.

    ``base_urls`` are tried in order (``<base>/<filename>``); http, https and
    file URLs all work.  Returns the path of the new file in ``directory``.
    Raises ``DownloadError`` naming every URL tried and why it failed; in that
    case nothing is left in ``directory``.
    """
    if not base_urls:
        raise ValueError(f"cannot download {filename}: no URLs given")
    os.makedirs(directory, exist_ok=True)
    destination = os.path.join(directory, filename)
    failures = []
    for base_url in base_urls:
        url = base_url.rstrip("/") + "/" + filename
        print(f"Downloading {url} to {destination}", file=sys.stderr)
        try:
            _fetch_and_verify(url, destination, expected_sha256)
            return destination
        except (OSError, ValueError) as error:
            # A dead or corrupted mirror should not stop us trying the next.
            failures.append(f"  {url}: {error}")
    raise DownloadError(
        f"could not download {filename} from any of {len(failures)} URL(s):\n"
        + "\n".join(failures)
    )


def _fetch_and_verify(url, destination, expected_sha256):
    """Stream ``url`` into ``destination``, which appears only if the sha256 matches."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
        with atomic_output(destination) as file:
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                file.write(chunk)
            # Raising inside atomic_output discards the temporary file.
            check_sha256(digest.hexdigest(), expected_sha256, url)


def check_sha256(actual, expected, what):
    """Raise ``ChecksumError`` unless ``expected`` is None or equals ``actual``."""
    if expected is not None and actual != expected.lower():
        raise ChecksumError(
            f"{what}: sha256 mismatch: expected {expected.lower()}, found {actual}"
        )


def sha256_of_stream(stream):
    """Hex sha256 of everything left in a binary stream, read in chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK_BYTES):
        digest.update(chunk)
    return digest.hexdigest()
