"""The shared problem: data, a network, a cost; the objective every strategy minimizes."""

from optlab.problem.build import build_network_problem, build_problem
from optlab.problem.data import DATASETS, Dataset, load_dataset
from optlab.problem.network import NetworkSpec
from optlab.problem.problem import Batch, Counters, NetworkProblem, Problem
from optlab.problem.test_functions import TEST_FUNCTIONS, TestFunctionProblem

__all__ = [
    "Batch",
    "Counters",
    "DATASETS",
    "Dataset",
    "NetworkProblem",
    "NetworkSpec",
    "Problem",
    "TEST_FUNCTIONS",
    "TestFunctionProblem",
    "build_network_problem",
    "build_problem",
    "load_dataset",
]
