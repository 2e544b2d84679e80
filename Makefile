# optlab: `make install` sets up .venv; `make test` runs the suite. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OPTLAB := $(VENV)/bin/optlab
PORT ?= 5000
TRACKING_URI ?= $(if $(MLFLOW_TRACKING_URI),$(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlruns/mlflow.db)

.PHONY: install test demo ui clean report bench

install:
	$(PYTHON) -m venv $(VENV)
	# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"

test:
	$(PY) -m pytest -q

# the quick main job: one Adam run on the embedded MNIST subset, recorded in mlruns/
demo:
	$(OPTLAB) run --strategy adam --lr 0.01 --epochs 10 --experiment demo

# the HTML + PDF report from the runs in mlruns/ (missing sweeps show as "not run yet")
report:
	$(OPTLAB) report --out reports/out

# README's results block, regenerated from the runs in mlruns/ (machine, date and load included)
.PHONY: results
results:
	$(OPTLAB) report --markdown --readme README.md

# speed ratios (a)-(e) vs a textbook PyTorch loop, side by side; BENCH_ARGS="--quick" or "--threads 1"
bench:
	$(PY) -m optlab bench $(BENCH_ARGS)

# MLflow's UI over the store, opening on the runs; prints one link per experiment to optlab's saved view
ui:
	$(OPTLAB) ui --tracking-uri "$(TRACKING_URI)" --port $(PORT)

clean:
	rm -rf .pytest_cache reports/out

# gradient-free reference numbers (issue 6); one thread: two OpenMP threads thrash on a loaded machine
.PHONY: bench-zeroth-order
bench-zeroth-order:
	OMP_NUM_THREADS=1 $(PY) benchmarks/zeroth_order.py

# `make sweep` runs the default suite; `SWEEP=experiments/NAME.toml make sweep` runs one file.
# Resumable: rerunning skips finished points. WORKERS=N sets the local process pool size.
SUITE ?= experiments/convergence.toml experiments/batch_size.toml experiments/memorization.toml \
         experiments/second_order.toml experiments/zeroth_order.toml
WORKERS ?= 2
.PHONY: sweep
sweep:
	@status=0; all=$$(date +%s); for f in $(if $(SWEEP),$(SWEEP),$(SUITE)); do \
	  echo "== $$f (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; start=$$(date +%s); \
	  $(OPTLAB) sweep "$$f" --workers $(WORKERS) || status=$$?; \
	  echo "== $$f took $$(( $$(date +%s) - start )) s (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; done; \
	echo "== all sweeps took $$(( $$(date +%s) - all )) s on $$(nproc) cores"; exit $$status
