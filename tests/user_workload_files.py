"""Workload files as a user writes them, for tests that load them from a folder outside the repository."""

# three Gaussian blobs in 5 dimensions and a small tanh network (no image pixels): `blobs.py:blobs`
BLOBS = """
import torch
import optlab


def blobs():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 5, generator=g) * 3

    def split(n):
        y = torch.randint(0, 3, (n,), generator=g)
        return centers[y] + torch.randn(n, 5, generator=g), y

    model = lambda: torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    return optlab.Workload(name="blobs", model=model, train=split(200), val=split(60), test=split(60))
"""
