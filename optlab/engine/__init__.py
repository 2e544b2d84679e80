"""The engine: one training loop that trains one run or many (stacked), evaluates, probes and records.

planning.py        prepare: the validation phase and the plan, before any run exists
trainers.py        the Trainer interface and the reference trainer (a Strategy's own step)
stacked_trainer.py K compatible first-order runs as one stacked program
loop.py            TrainingLoop: budget, evaluation, target, divergence, probes, recording, KILLED
probes.py          measurements at evaluation points (curvature; later gradient noise, diagnostics)
runner.py          run / run_many: pick the trainer, group compatible runs
"""

from optlab.engine.planning import Prepared, prepare
from optlab.engine.probes import Probe, ProbeInput
from optlab.engine.result import RunResult
from optlab.engine.runner import run, run_many

__all__ = ["Prepared", "Probe", "ProbeInput", "RunResult", "prepare", "run", "run_many"]
