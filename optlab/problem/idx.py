"""Full MNIST from IDX files: download from the standard mirrors, verify SHA-256, cache.

Nothing here touches the network unless the files are missing from the cache, so tests
exercise the reader and the checksum check on IDX files they write themselves.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import platformdirs

from optlab.errors import DataError

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# Published SHA-256 of the canonical gzipped IDX files.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def cache_dir() -> Path:
    """Where downloads are kept: $OPTLAB_DATA, else the user cache dir."""
    root = os.environ.get("OPTLAB_DATA")
    return Path(root) if root else Path(platformdirs.user_cache_dir("optlab")) / "mnist"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a numpy array of its stated shape and type."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"IDX file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"not an IDX file (bad magic number): {path}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(body) != expected:
        raise DataError(
            f"IDX file truncated or padded: {path} has {len(body)} data bytes, expected {expected} for shape {shape}"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an array as an IDX file (gzipped when the name ends in .gz)."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09}
    array = np.ascontiguousarray(array)
    if array.dtype not in codes:
        raise ValueError(f"write_idx supports uint8/int8, got {array.dtype}")
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def verify(path: Path, sha256: str) -> None:
    actual = sha256_of(path)
    if actual != sha256:
        raise DataError(
            f"checksum mismatch for {path.name}: sha256 {actual}, expected {sha256} "
            f"(corrupt or incomplete download; delete it and retry)"
        )


def fetch(name: str, sha256: str, directory: Path, mirrors=MIRRORS, timeout: float = 30.0) -> Path:
    """Return the verified cached file, downloading it from the first mirror that answers."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.exists():
        verify(target, sha256)
        return target
    errors = []
    for mirror in mirrors:
        partial = target.with_suffix(target.suffix + ".part")
        try:
            with urllib.request.urlopen(mirror + name, timeout=timeout) as response, open(partial, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
            verify(partial, sha256)
            partial.replace(target)
            return target
        except (urllib.error.URLError, OSError, DataError) as exc:
            partial.unlink(missing_ok=True)
            errors.append(f"{mirror}: {exc}")
    raise DataError(
        f"cannot download {name} (offline?); tried {len(mirrors)} mirrors, last error: "
        f"{errors[-1]}. Put the verified file in {directory} or use --dataset mnist5k"
    )


def load_mnist_idx(directory: Path | None = None, files: dict[str, str] = MNIST_FILES, mirrors=MIRRORS):
    """Full MNIST as uint8 arrays (x_train, y_train, x_test, y_test), verified and cached."""
    directory = Path(directory) if directory else cache_dir()
    paths = {name: fetch(name, sha, directory, mirrors) for name, sha in files.items()}
    names = list(files)
    x_train, y_train, x_test, y_test = (read_idx(paths[n]) for n in names)
    return x_train.reshape(len(x_train), -1), y_train, x_test.reshape(len(x_test), -1), y_test
