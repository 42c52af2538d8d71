# marketpulse — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
PIP_STAMP := .venv/.installed-$(shell cat pyproject.toml 2>/dev/null | sha1sum | cut -c1-12)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup venv stack-fetch models-build up down status test test-unit demo bench bench-models bench-model-steps bench-explain bench-e2e bench-detector bench-novelty clean

help:
	@echo "make demo   - install what is missing, start Kafka + Elasticsearch, run the pipeline demo"
	@echo "make test   - install what is missing, start the stack, run unit + integration tests, stop it"
	@echo "make setup  - venv (.venv/), Python deps, Kafka jars, Elasticsearch zip, derived model files"
	@echo "make up | down | status - the local stack on 127.0.0.1"
	@echo "make bench  - benchmarks (results in bench/results/)"

$(PIP_STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,train]"
	@rm -f .venv/.installed-*; touch $@

venv: $(PIP_STAMP)

stack-fetch:
	@scripts/stack.sh fetch

models-build: venv
	$(PY) -m models.build

setup: venv stack-fetch models-build

up: venv stack-fetch
	@scripts/stack.sh up

down:
	@scripts/stack.sh down

status:
	@scripts/stack.sh status

# Starts the stack if it is not running, stops it afterwards only if this target started it.
# MARKETPULSE_REQUIRE_STACK=1 turns "server unreachable" from a skip into a failure.
# The tests use the secured listener and node too (MARKETPULSE_STACK_SECURE=1).
test: export MARKETPULSE_STACK_SECURE := 1
test: setup
	@started=0; scripts/stack.sh status >/dev/null 2>&1 || { scripts/stack.sh up || exit 1; started=1; }; \
	MARKETPULSE_REQUIRE_STACK=1 $(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	[ $$started = 1 ] && scripts/stack.sh down; exit $$rc

test-unit: venv
	$(PY) -m pytest -m "not integration and not reliability" $(PYTEST_ARGS)

demo: setup up
	$(PY) -m marketpulse.cli demo

bench-models: setup
	$(PY) -m bench.bench_models

# texts/s and dev accuracy per CPU optimisation step, time per operator (refuses a busy machine).
bench-model-steps: setup
	$(PY) -m bench.bench_model_steps $(BENCH_MODEL_STEPS_ARGS)

# Explanation cost and agreement, occlusion vs the screened method (refuses a busy machine; BENCH_EXPLAIN_ARGS=--allow-busy).
bench-explain: setup
	$(PY) -m bench.bench_explain $(BENCH_EXPLAIN_ARGS)

# Refuses a busy machine (BENCH_E2E_ARGS=--allow-busy flags the results instead); --profile adds where a worker's time goes.
bench-e2e: setup up
	$(PY) -m bench.bench_e2e $(BENCH_E2E_ARGS)

# Synthetic suite (the live alerter's detector) and the NAB dev corpus of real series (../shared/data/nab-dev).
# eval_nab first: it refuses a busy machine (its speed figure), and eval_detector keeps both cores busy.
bench-detector: venv
	$(PY) -m bench.eval_nab
	$(PY) -m bench.eval_detector

# Refuses to run on a busy machine (1-min load average above half the cores); BENCH_NOVELTY_ARGS=--force overrides.
bench-novelty: venv
	$(PY) -m bench.bench_novelty $(BENCH_NOVELTY_ARGS)

# bench-novelty first: it needs the idle machine that the other benchmarks would leave busy.
bench: bench-novelty bench-models bench-model-steps bench-explain bench-e2e bench-detector

clean:
	rm -rf models/build .pytest_cache
