"""A small convolutional network on mnist5k, as a workload optlab can compare optimizers on.

    optlab run --workload examples/cnn_mnist5k.py:tiny_cnn -s adam --epochs 2

The data is optlab's embedded MNIST subset (3,500 train / 500 validation / 1,000 test digits), the
network two strided 3x3 convolutions and a linear read-out (about 9,000 parameters).
"""

from torch import nn

import optlab
from optlab.problem import load_dataset


def tiny_cnn_model() -> nn.Module:
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),  # the flat 784 pixels as a 1x28x28 image
        nn.Conv2d(1, 8, kernel_size=3, stride=2, padding=1),  # -> 8x14x14
        nn.ReLU(),
        nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),  # -> 16x7x7
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def tiny_cnn() -> optlab.Workload:
    data = load_dataset("mnist5k")
    return optlab.Workload(
        name="tiny_cnn",
        model=tiny_cnn_model,  # called once per seed: each seed its own initialization
        train=(data.x_train, data.y_train),
        val=(data.x_val, data.y_val),
        test=(data.x_test, data.y_test),
        loss="cross_entropy",
        target=0.9,  # validation accuracy whose time to reach is recorded
    )
