"""The problem a RunConfig describes: a 2-D test function by name, or dataset + network + cost."""

from __future__ import annotations

import torch

from optlab.errors import ConfigError
from optlab.problem import workload_ref
from optlab.problem.data import load_dataset
from optlab.problem.module_problem import ModuleProblem
from optlab.problem.network import NetworkSpec
from optlab.problem.problem import NetworkProblem, Problem
from optlab.problem.test_functions import TEST_FUNCTIONS, TestFunctionProblem


def build_problem(config) -> Problem:
    """The problem a RunConfig describes: a user's workload by reference, a test function by name, or
    network + cost + dataset."""
    dtype = {"float32": torch.float32, "float64": torch.float64}[config.dtype]
    if config.workload is not None:
        loaded = workload_ref.load(config.workload)
        return ModuleProblem(
            loaded.workload, dtype=dtype, device=config.device, tags=loaded.tags(), artifacts=loaded.artifacts()
        )
    if config.dataset in TEST_FUNCTIONS:
        return TestFunctionProblem(config.dataset, dtype=dtype, device=config.device)
    dataset = load_dataset(
        config.dataset,
        label_noise=config.label_noise,
        variant=config.variant,
        standardized=config.standardize,
        noise_seed=config.noise_seed,
        train_size=config.train_size,
    )
    network = NetworkSpec(dataset.n_features, tuple(config.hidden), dataset.n_classes, config.activation, config.init)
    return NetworkProblem(dataset, network, config.cost, dtype=dtype, device=config.device)


def build_network_problem(config) -> NetworkProblem:
    """The problem of `config` where the caller needs the reference kind (a network over a dataset)."""
    problem = build_problem(config)
    if not isinstance(problem, NetworkProblem):
        raise ConfigError(f"{problem.name!r} is not a network over a dataset (a user workload or a test function)")
    return problem
