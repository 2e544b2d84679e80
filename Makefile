# optlab: `make install` sets up .venv; `make test` runs the suite. See README.md and docs/ (`make docs`).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OPTLAB := $(VENV)/bin/optlab
PORT ?= 5000
TRACKING_URI ?= $(if $(MLFLOW_TRACKING_URI),$(MLFLOW_TRACKING_URI),sqlite:///$(CURDIR)/mlruns/mlflow.db)

.PHONY: install test test-slow test-all test-cluster demo ui clean report bench bench-tables bench-final sweep-efficiency-docs cluster-demo cluster-bench docs lint glossary

# install: the CPU build of torch first (an unpinned torch pulls a multi-GB CUDA build), then every other
# package at the version and hash requirements.lock pins (Python 3.11, Linux x86_64), then optlab itself.
# LOCK= (empty) installs from pyproject.toml's ranges instead; `make lock` refreshes the lock from them.
TORCH ?= torch==2.13.0
LOCK ?= requirements.lock
# where the lock resolves torch's CPU build (its dependencies go into the lock; torch itself does not)
TORCH_LINKS ?= $(if $(wildcard /opt/wheels/torch-*),/opt/wheels,https://download.pytorch.org/whl/cpu/torch/)
.PHONY: lock
install:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(TORCH)
ifneq ($(LOCK),)
	$(PY) -m pip install --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip install --no-deps -e .
	$(PY) -m pip check
else
	$(PY) -m pip install -e ".[dev]"
endif

lock:
	@constraint=$$(mktemp) && echo "$(TORCH)+cpu" > $$constraint && \
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
	  --python-platform x86_64-unknown-linux-gnu --find-links $(TORCH_LINKS) --index-strategy unsafe-best-match \
	  --constraint $$constraint --no-emit-package torch --custom-compile-command "make lock" \
	  --output-file requirements.lock --quiet; status=$$?; rm -f $$constraint; exit $$status
	@echo "requirements.lock: $$(grep -c '^[a-z0-9].*==' requirements.lock) packages pinned with hashes (torch: $(TORCH), installed first)"

# the quick suite, on TEST_WORKERS pytest processes (pytest-xdist; 1 = in this process, for a debugger);
# test-slow: the tests that take more than ~15 s each (fault tests, whole reports and pages; CI runs both), one
# at a time, as each starts sweeps, servers or reports of its own
TEST_WORKERS ?= 2
test:
	$(PY) -m pytest -q $(if $(filter 1,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

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

# points per minute: 2-node loopback Ray cluster vs --workers 2 locally; time spent in HTTP tracking calls;
# two sizes (24 and 96 points): a small sweep is dominated by start-up, a larger one by the per-point costs
CLUSTER_BENCH_ARGS ?= --seeds 6,24 --repeat 2
cluster-bench:
	$(PY) scripts/cluster_bench.py --into docs/results/speed.md $(CLUSTER_BENCH_ARGS)

# the quick main job: one Adam run on the embedded MNIST subset, recorded in mlruns/
demo:
	$(OPTLAB) run --strategy adam --lr 0.01 --epochs 10 --experiment demo

# the HTML + PDF report from the runs in mlruns/ (missing sweeps show as "not run yet")
report:
	$(OPTLAB) report --out reports/out

# the generated blocks of docs/results/index.md, regenerated from the runs in mlruns/ (machine, date and load included)
.PHONY: results
results:
	$(OPTLAB) report --markdown --into docs/results/index.md

# speed vs the textbook PyTorch loop, as users run it; each table is kept in benchmarks/results
# (BENCH_ARGS="--quick" for a smoke run, not kept)
bench:
	$(PY) -m optlab bench $(if $(findstring --quick,$(BENCH_ARGS)),,--save benchmarks/results) $(BENCH_ARGS)

# docs/results/speed.md's bench block = the last three saved bench tables (generated, never typed)
bench-tables:
	$(PY) -m optlab bench --into docs/results/speed.md --results benchmarks/results

# the docs' speed page: row (w), a fixed sweep's efficiency, of the last three saved bench tables, between the
# page's <!-- sweep-efficiency:begin --> and <!-- sweep-efficiency:end --> markers (SPEED_PAGE=any markdown file)
SPEED_PAGE ?= docs/results/speed.md
.PHONY: bench-docs
bench-docs:
	$(PY) -m optlab bench --sweep-block $(SPEED_PAGE) --results benchmarks/results

# a sweep's bookkeeping per run vs the size of its store (100 / 1,000 / 10,000 runs written in bulk); the
# table goes between the <!-- store-scale:begin --> and <!-- store-scale:end --> markers of SPEED_PAGE
.PHONY: bench-store-scale
bench-store-scale:
	$(PY) scripts/store_scale.py --markdown $(SPEED_PAGE)

# the default suite's efficiency per sweep (its last finished runs in the store) between the
# <!-- suite-efficiency:begin --> and <!-- suite-efficiency:end --> markers of SPEED_PAGE
sweep-efficiency-docs:
	$(PY) scripts/suite_efficiency.py --markdown $(SPEED_PAGE)

# the three consecutive runs docs/results/speed.md quotes (on an idle machine), then that page's block
bench-final:
	for i in 1 2 3; do $(PY) -m optlab bench --save benchmarks/results || exit 1; done
	$(MAKE) bench-tables

# MLflow's UI over the store, opening on the runs; prints one link per experiment to optlab's saved view
ui:
	$(OPTLAB) ui --tracking-uri "$(TRACKING_URI)" --port $(PORT)

clean:
	rm -rf .pytest_cache reports/out site

# the documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or reference fails
docs:
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# style and types; the same checks run as pre-commit hooks (.pre-commit-config.yaml)
lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy optlab

# gradient-free reference numbers (issue 6); one thread: two OpenMP threads thrash on a loaded machine
.PHONY: bench-zeroth-order
bench-zeroth-order:
	OMP_NUM_THREADS=1 $(PY) benchmarks/zeroth_order.py

# `make sweep` runs the default suite; `SWEEP=experiments/NAME.toml make sweep` runs one file.
# Resumable: rerunning skips finished points. WORKERS=N sets the local process pool size.
SUITE ?= experiments/convergence.toml experiments/batch_size.toml experiments/memorization.toml \
         experiments/second_order.toml experiments/zeroth_order.toml
WORKERS ?= 2
# the experiments beyond the default suite: the convergence design on the small CNN (minutes of unstacked runs), edge of stability, diagnostics per strategy, the lecture's lessons; newer optimizers (po:)
MORE ?= experiments/convergence_cnn.toml experiments/dynamics.toml experiments/diagnostics.toml experiments/lessons.toml experiments/modern.toml
.PHONY: sweep sweep-more
sweep-more:
	@$(MAKE) --no-print-directory sweep SWEEP="$(MORE)"
sweep:
	@status=0; all=$$(date +%s); for f in $(if $(SWEEP),$(SWEEP),$(SUITE)); do \
	  echo "== $$f (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; start=$$(date +%s); \
	  $(OPTLAB) sweep "$$f" --workers $(WORKERS) || status=$$?; \
	  echo "== $$f took $$(( $$(date +%s) - start )) s (load average $$(cut -d' ' -f1-3 /proc/loadavg))"; done; \
	echo "== all sweeps took $$(( $$(date +%s) - all )) s on $$(nproc) cores"; exit $$status

# do verdicts survive a change of thread count? The convergence suite's reruns (after `make sweep`) retrained
# with 1 and 2 intra-op threads; the count of agreeing verdicts goes into docs/sweeps/statistics.md.
# THREAD_CHECK_ARGS="--seeds 5" for a reduced check (the first 5 rerun seeds of each configuration)
.PHONY: thread-check
thread-check:
	$(PY) scripts/thread_check.py $(THREAD_CHECK_ARGS)

# how long `make sweep` would take on 2 idle cores, from the sweep files and brief measurements of each kind of
# run (a few minutes; nothing recorded). SWEEP=... estimates other files; exit status 1 above 15 minutes
.PHONY: sweep-estimate
sweep-estimate:
	$(PY) scripts/sweep_estimate.py $(if $(SWEEP),$(SWEEP),$(SUITE)) --workers $(WORKERS)

# docs/glossary.md from the report's glossary (optlab/reports/glossary.py)
glossary:
	$(PY) -m optlab.reports.glossary > docs/glossary.md
