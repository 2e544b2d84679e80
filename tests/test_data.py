import gzip
import hashlib

import numpy as np
import pytest
import torch

from optlab.errors import ConfigError, DataError
from optlab.problem import idx
from optlab.problem.data import cached_arrays, load_dataset, split_indices


def test_mnist5k_is_a_stratified_3500_500_1000_split_in_unit_range():
    ds = load_dataset("mnist5k")
    assert ds.x_train.shape == (3500, 784) and ds.x_val.shape == (500, 784) and ds.x_test.shape == (1000, 784)
    assert ds.split == "3500/500/1000"
    assert float(ds.x_train.min()) == 0.0 and float(ds.x_train.max()) == 1.0
    assert torch.bincount(ds.y_train).tolist() == [350] * 10
    assert torch.bincount(ds.y_val).tolist() == [50] * 10
    assert torch.bincount(ds.y_test).tolist() == [100] * 10
    assert ds.fingerprint() == load_dataset("mnist5k").fingerprint()
    # the three parts are disjoint: no image appears in two of them
    rows = lambda x: {bytes(r.numpy().tobytes()) for r in (x * 255).round().to(torch.uint8)}
    train, val, test = rows(ds.x_train), rows(ds.x_val), rows(ds.x_test)
    assert not (train & val) and not (train & test) and not (val & test)


def test_the_fingerprint_is_of_the_exact_data_and_a_changed_copy_has_its_own():
    from dataclasses import replace

    ds = load_dataset("digits")
    first = ds.fingerprint()
    assert ds.fingerprint() == first  # computed once, asked for by every run
    swapped = replace(ds, y_train=ds.y_train.roll(1))  # the same labels in another order: other data
    assert swapped.fingerprint() != first
    assert replace(ds, y_train=ds.y_train.clone()).fingerprint() == first  # equal tensors, equal fingerprint


def test_data_already_on_its_device_and_dtype_is_shared_and_hashed_once():
    import torch

    ds = load_dataset("digits")
    assert ds.to(dtype=ds.x_train.dtype) is ds  # each problem of a sweep's chunk asks; none copies or rehashes
    wider = ds.to(dtype=torch.float64)
    assert wider is not ds and wider.x_train.dtype == torch.float64 and wider.y_train is ds.y_train
    assert wider.fingerprint() != ds.fingerprint()  # other bytes, other data


def test_split_indices_are_disjoint_exact_and_stratified_in_every_prefix():
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    train, val, test = split_indices(y, n_val=40, n_test=20, seed=3)
    assert (len(train), len(val), len(test)) == (140, 40, 20)
    assert len(set(train) | set(val) | set(test)) == 200
    assert np.bincount(y[val]).tolist() == [20, 10, 6, 4]
    assert np.bincount(y[test]).tolist() == [10, 5, 3, 2]
    prefix = y[train[:70]]  # train_size keeps a prefix: still in proportion
    assert np.abs(np.bincount(prefix, minlength=4) - np.array([35, 17.5, 10.5, 7])).max() <= 1
    again = split_indices(y, n_val=40, n_test=20, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    with pytest.raises(ConfigError):
        split_indices(y, n_val=150, n_test=50)


def test_label_noise_leaves_validation_and_test_labels_true():
    clean, noisy = load_dataset("digits"), load_dataset("digits", label_noise=1.0, noise_seed=2)
    assert not torch.equal(clean.y_train, noisy.y_train)
    assert torch.equal(clean.y_val, noisy.y_val) and torch.equal(clean.y_test, noisy.y_test)


def test_parsed_arrays_are_cached_verified_and_rebuilt_when_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_DATA", str(tmp_path))
    source = tmp_path / "source.csv"
    source.write_text("1,2\n3,4\n")
    calls = []

    def parse():
        calls.append(1)
        return np.loadtxt(source, delimiter=",").astype(np.int64), np.arange(2)

    first = cached_arrays("toy", source, parse)
    second = cached_arrays("toy", source, parse)
    assert len(calls) == 1 and all(np.array_equal(a, b) for a, b in zip(first, second))
    (cached,) = (tmp_path / "parsed").glob("toy-*.npz")
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte in the middle of the file
    cached.write_bytes(bytes(data))
    third = cached_arrays("toy", source, parse)
    assert len(calls) == 2 and all(np.array_equal(a, b) for a, b in zip(first, third))
    cached.write_bytes(b"not a zip file")
    assert np.array_equal(cached_arrays("toy", source, parse)[0], first[0]) and len(calls) == 3
    source.write_text("5,6\n7,8\n")  # a changed source is a different cache entry
    assert cached_arrays("toy", source, parse)[0].tolist() == [[5, 6], [7, 8]] and len(calls) == 4


def test_digits_dataset_is_8x8_scaled():
    ds = load_dataset("digits")
    assert ds.n_features == 64 and ds.n_classes == 10 and float(ds.x_train.max()) == 1.0


def _write_mnist_like(directory, n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    checksums = {}
    for name, array in arrays.items():
        idx.write_idx(directory / name, array)
        checksums[name] = hashlib.sha256((directory / name).read_bytes()).hexdigest()
    return arrays, checksums


def test_idx_reader_reads_files_the_test_writes(tmp_path):
    arrays, _ = _write_mnist_like(tmp_path)
    for name, array in arrays.items():
        assert np.array_equal(idx.read_idx(tmp_path / name), array)
    raw = tmp_path / "plain-idx1-ubyte"
    idx.write_idx(raw, np.arange(5, dtype=np.uint8))
    assert idx.read_idx(raw).tolist() == [0, 1, 2, 3, 4]


def test_idx_reader_rejects_truncated_and_non_idx_files(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(DataError, match="truncated"):
        idx.read_idx(bad)
    with gzip.open(bad, "wb") as f:
        f.write(b"PK\x03\x04 not idx")
    with pytest.raises(DataError, match="magic"):
        idx.read_idx(bad)


def test_download_verifies_and_caches_from_a_mirror(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    arrays, checksums = _write_mnist_like(mirror)
    x_train, y_train, x_test, y_test = idx.load_mnist_idx(cache, checksums, mirrors=(mirror.as_uri() + "/",))
    assert x_train.shape == (30, 784) and np.array_equal(y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert sorted(p.name for p in cache.iterdir()) == sorted(checksums)
    # cached: a second load needs no mirror at all
    idx.load_mnist_idx(cache, checksums, mirrors=())


def test_checksum_check_rejects_a_corrupted_download(tmp_path):
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    _, checksums = _write_mnist_like(mirror)
    name = "train-labels-idx1-ubyte.gz"
    data = bytearray((mirror / name).read_bytes())
    data[-1] ^= 0xFF
    (mirror / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch for train-labels"):
        idx.load_mnist_idx(cache, checksums, mirrors=(mirror.as_uri() + "/",))
    assert not (cache / name).exists() and not list(cache.glob("*.part"))
    # a corrupted file already in the cache is refused too
    (cache / name).write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum mismatch"):
        idx.fetch(name, checksums[name], cache, mirrors=())


def test_offline_download_gives_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="cannot download .*offline"):
        idx.fetch("train-images-idx3-ubyte.gz", "0" * 64, tmp_path, mirrors=((tmp_path / "nowhere").as_uri() + "/",))


@pytest.mark.parametrize("p", [0.0, 0.2, 0.6, 1.0])
def test_label_noise_keeps_the_expected_fraction(p):
    clean, noisy = load_dataset("mnist5k"), load_dataset("mnist5k", label_noise=p, noise_seed=1)
    kept = (clean.y_train == noisy.y_train).double().mean().item()
    expected = (1 - p) + p / 10  # a redrawn label equals the true one 1 time in 10
    assert abs(kept - expected) < 0.02
    assert torch.equal(clean.y_test, noisy.y_test)  # test labels stay true
    again = load_dataset("mnist5k", label_noise=p, noise_seed=1)
    assert torch.equal(noisy.y_train, again.y_train)


def test_shuffled_pixels_use_one_permutation_for_all_images():
    clean, shuffled = load_dataset("digits"), load_dataset("digits", variant="shuffled_pixels")
    assert not torch.equal(clean.x_train, shuffled.x_train)
    # every column of the shuffled data is a column of the clean data, for train and test alike
    columns = {}
    for i, col in enumerate(torch.cat([clean.x_train, clean.x_val, clean.x_test]).T):
        columns.setdefault(tuple(col.tolist()), i)
    mapping = [
        columns.get(tuple(col.tolist())) for col in torch.cat([shuffled.x_train, shuffled.x_val, shuffled.x_test]).T
    ]
    assert all(m is not None for m in mapping)
    assert torch.equal(shuffled.x_test, clean.x_test[:, mapping])
    assert torch.equal(shuffled.x_train, clean.x_train[:, mapping])


def test_random_pixels_permute_each_image_independently():
    clean, scrambled = load_dataset("digits"), load_dataset("digits", variant="random_pixels")
    assert torch.equal(clean.x_train.sort(dim=1).values, scrambled.x_train.sort(dim=1).values)
    assert torch.equal(clean.y_train, scrambled.y_train)
    # no single permutation explains all images: column sums are not preserved as a set
    assert not torch.allclose(clean.x_train.sum(0).sort().values, scrambled.x_train.sum(0).sort().values)


def test_gaussian_inputs_match_the_data_mean_and_variance():
    clean, gauss = load_dataset("mnist5k"), load_dataset("mnist5k", variant="gaussian")
    assert abs(gauss.x_train.mean() - clean.x_train.mean()) < 0.002
    assert abs(gauss.x_train.std() - clean.x_train.std()) < 0.002
    assert gauss.x_train.shape == clean.x_train.shape


def test_standardize_uses_training_statistics():
    ds = load_dataset("digits", standardized=True)
    varying = ds.x_train.std(0) > 0
    assert torch.allclose(ds.x_train.mean(0), torch.zeros(64), atol=1e-5)
    assert torch.allclose(ds.x_train.std(0)[varying], torch.ones(int(varying.sum())), atol=1e-4)


def test_a_feature_constant_in_training_is_centred_not_blown_up():
    raw, ds = load_dataset("mnist5k"), load_dataset("mnist5k", standardized=True)
    constant = raw.x_train.std(0) == 0
    assert constant.sum() > 0
    # a test image with ink on a pixel that is blank in every training image keeps that value (scale 1)
    torch.testing.assert_close(ds.x_test[:, constant], raw.x_test[:, constant] - raw.x_train[:, constant].mean(0))
    assert ds.x_test.abs().max() < 1000 and ds.x_val.abs().max() < 1000


def test_unknown_dataset_and_bad_noise_are_refused():
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")
    with pytest.raises(ConfigError, match="label_noise must be in"):
        load_dataset("digits", label_noise=1.5)
