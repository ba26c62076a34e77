# streamrec: one command to set up and run the demo, one to set up and run the tests.
#   make demo   # fresh machine -> venv -> embedded broker + Ray + model -> recommendations
#   make test   # fresh machine -> venv -> unit + integration tests (all but the long suites)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is installed first and pinned: on the project machines that version is a
# CPU build already on disk; any other spec (or installing the project first) pulls a
# multi-GB CUDA build. The project itself asks only for torch>=2.3.
TORCH ?= torch==2.13.0

.PHONY: setup demo test test-unit test-long lint bench clean

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "streamrec needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e '.[embedded,tooling,dev]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/streamrec demo

# The 25 slowest tests are listed at the end: where CI's time goes (it should stay ~25 min).
test: setup
	$(BIN)/python -m pytest -m "not long" --durations=25

test-unit: setup
	$(BIN)/python -m pytest -m "not integration"

# The suites too long for CI (the fault suite, ~9 min on 2 cores), their report rows shown.
test-long: setup
	$(BIN)/python -m pytest -m long -s

lint: setup
	$(BIN)/ruff check streams workers tooling tests examples
	$(BIN)/ruff format --check streams workers tooling tests examples
	$(BIN)/mypy

# Every figure of BENCHMARKS.md in one run (~30 min on 2 cores): the pipeline (training on
# and off), 1-3 workers on as many Ray nodes, the catalog actors at 1.7k-100k items with a
# hot swap, the users table at 10k and 100k users, the cluster-wide actors' capacity, one
# online-training round.
bench: setup
	$(BIN)/streamrec bench --dataset ../shared/data/ml-100k --events 20000 --output results/bench.json
	$(BIN)/python -m tooling.scaling_bench --dataset ../shared/data/ml-100k
	$(BIN)/python -m tooling.scale_bench --dataset ../shared/data/ml-100k
	$(BIN)/python -m tooling.recovery_bench --users 10000,100000 --stores rocksdb://
	$(BIN)/python -m tooling.serving_bench --dataset ../shared/data/ml-100k
	$(BIN)/python -m tooling.recommend_bench --dataset ../shared/data/ml-100k
	$(BIN)/python -m tooling.capacity_bench
	$(BIN)/python -m tooling.round_bench

clean:
	rm -rf $(VENV) .streamrec results
