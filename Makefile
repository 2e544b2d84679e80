# optlab: `make install` sets up .venv; `make test` runs the suite. See README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OPTLAB := $(VENV)/bin/optlab
PORT ?= 5000
TRACKING_URI ?= $(if $(MLFLOW_TRACKING_URI),$(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlruns/mlflow.db)

.PHONY: install test test-slow test-all test-cluster demo ui clean report bench bench-readme bench-final cluster-demo cluster-bench glossary

install:
	$(PYTHON) -m venv $(VENV)
	# the CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"

# the quick suite; test-slow: the fault tests that take more than ~30 s each (CI runs both)
test:
	$(PY) -m pytest -q

test-slow:
	$(PY) -m pytest -q -m slow

test-all:
	$(PY) -m pytest -q -m "slow or cluster or not (slow or cluster)"

# PostgreSQL + MLflow server + a two-node Ray cluster on loopback, and faults on them (needs the
# postgresql Debian package; .ci/run installs it)
test-cluster:
	$(PY) -m pytest -q -m cluster tests/cluster

# the same cluster the tests start, a sweep on it, the UI address; Ctrl-C tears it all down.
# SWEEP=experiments/NAME.toml picks the sweep (default: smoke)
cluster-demo:
	$(PY) scripts/cluster_demo.py $(if $(SWEEP),--sweep $(SWEEP))

# points per minute: 2-node loopback Ray cluster vs --workers 2 locally; time spent in HTTP tracking calls
cluster-bench:
	$(PY) scripts/cluster_bench.py --readme README.md $(CLUSTER_BENCH_ARGS)

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

# speed vs the textbook PyTorch loop, as users run it; each table is kept in benchmarks/results
# (BENCH_ARGS="--quick" for a smoke run, not kept)
bench:
	$(PY) -m optlab bench $(if $(findstring --quick,$(BENCH_ARGS)),,--save benchmarks/results) $(BENCH_ARGS)

# README's speed section = the last three saved bench tables (generated, never typed)
bench-readme:
	$(PY) -m optlab bench --readme README.md --results benchmarks/results

# the three consecutive runs the README quotes (on an idle machine), then the README section
bench-final:
	for i in 1 2 3; do $(PY) -m optlab bench --save benchmarks/results || exit 1; done
	$(MAKE) bench-readme

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
# the experiments beyond the default suite: edge of stability, diagnostics per strategy, the lecture's lessons
MORE ?= experiments/dynamics.toml experiments/diagnostics.toml experiments/lessons.toml
.PHONY: sweep sweep-more
sweep-more:
	@$(MAKE) --no-print-directory sweep SWEEP="$(MORE)"
sweep:
	@status=0; all=$$(date +%s); for f in $(if $(SWEEP),$(SWEEP),$(SUITE)); do \
	  echo "== $$f (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; start=$$(date +%s); \
	  $(OPTLAB) sweep "$$f" --workers $(WORKERS) || status=$$?; \
	  echo "== $$f took $$(( $$(date +%s) - start )) s (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; done; \
	echo "== all sweeps took $$(( $$(date +%s) - all )) s on $$(nproc) cores"; exit $$status

glossary:  ## docs/glossary.md from the report's glossary (optlab/reports/glossary.py)
	$(PY) -m optlab.reports.glossary > docs/glossary.md
