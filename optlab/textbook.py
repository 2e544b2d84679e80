"""The textbook PyTorch loop that `make bench` compares optlab with, written as the PyTorch tutorials do.

TensorDataset + DataLoader (shuffled mini-batches) + nn.Sequential + torch.optim.SGD + CrossEntropyLoss
on the reference 784-16-16-10 sigmoid network, evaluated (loss and accuracy on the training,
validation and test sets) before training and after every epoch, on the same mnist5k arrays optlab
trains on (read through optlab's data cache, so both pay the same to load them). Run it as a whole
process with `python -m optlab.textbook --epochs 40 --lr 0.5 --batch-size 32`; the benchmark also
calls `train` in-process. It uses torch's default number of threads unless --threads is given.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def train(
    data,
    sizes: tuple[int, ...],
    lr: float,
    batch_size: int = 32,
    epochs: float | None = None,
    steps: int | None = None,
    seed: int = 0,
    evaluate_every_epoch: bool = True,
) -> dict[str, float]:
    """Train the textbook way for `epochs` (or `steps`); returns the last evaluation."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.Sigmoid())
    model = nn.Sequential(*layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size, shuffle=True)

    @torch.no_grad()
    def evaluate() -> dict[str, float]:
        out = {}
        for part, x, y in (
            ("train", data.x_train, data.y_train),
            ("val", data.x_val, data.y_val),
            ("test", data.x_test, data.y_test),
        ):
            logits = model(x)
            out[f"{part}_loss"] = float(loss_fn(logits, y))
            out[f"{part}_accuracy"] = float((logits.argmax(1) == y).float().mean())
        return out

    if steps is not None:
        limit = steps
    elif epochs is not None:
        limit = int(round(epochs * len(loader)))
    else:
        raise ValueError("train() needs `epochs` or `steps`")
    done, last = 0, evaluate()
    while done < limit:
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            done += 1
            if done >= limit:
                break
        if evaluate_every_epoch or done >= limit:
            last = evaluate()
    return last


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m optlab.textbook", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    from optlab.problem.data import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.dataset)
    sizes = (data.n_features, 16, 16, data.n_classes)
    started = time.perf_counter()
    final = train(data, sizes, args.lr, args.batch_size, epochs=args.epochs, steps=args.steps, seed=args.seed)
    print(
        f"textbook lr={args.lr:g} B={args.batch_size}: test acc {final['test_accuracy']:.4f} | "
        f"train loss {final['train_loss']:.4f} | {time.perf_counter() - started:.2f}s training and evaluation"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
