# Two commands for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra pytest options, e.g. `make test PYTEST_ARGS='-x tests/unit'`.
PYTEST_ARGS ?=

.PHONY: help venv deps demo test test-fast test-slow test-docker test-k8s test-all lint clean

help:
	@echo "make demo   install what is missing, bring the stack up, break it, watch it recover"
	@echo "make test   install dev dependencies and run the test suite (all but the slow game days)"
	@echo "make test-fast  unit + integration tests only, no CLI stack (-m 'not slow and not e2e')"
	@echo "make test-slow  the game days and incident rehearsals (pytest -m slow; CI runs both)"
	@echo "make test-all   both"
	@echo "make test-docker  the docker backend on a private dockerd (root; bash scripts/engines.sh first)"
	@echo "make test-k8s  the kubernetes backend on a one-node cluster in a netns (root; scripts/engines.sh, scripts/k8s-build.sh)"
	@echo "make deps   install redis-server and prometheus (apt-get) when missing"
	@echo "make venv   create $(VENV) and install chaosctl with its dev extras"
	@echo "make lint   ruff"
	@echo "make clean  remove the venv and caches (not the stack's state dir)"

# Reinstall only when pyproject.toml changes; the stamp lives inside the venv.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

deps:
	bash scripts/deps.sh

demo: deps venv
	VENV=$(VENV) bash scripts/demo.sh

# pytest's own exit code is make's: 5 ("no tests collected") fails the build like any other.
# Game days and incident rehearsals take minutes each: marked `slow`, run by `make test-slow`
# (and by CI after `make test`), so `make test` stays well under 15 minutes.
# tests/docker (marked `docker` by its conftest.py) needs root and a private dockerd: only
# `make test-docker` runs it, none of the other test targets.
test: venv
	$(BIN)/pytest -q -m "not slow and not docker and not k8s" $(PYTEST_ARGS)

# tests/e2e and tests/integration are marked `e2e` / `integration` by their conftest.py:
# the fast subset leaves out everything that drives the CLI against a live stack.
test-fast: venv
	$(BIN)/pytest -q -m "not slow and not e2e and not docker and not k8s" $(PYTEST_ARGS)

test-slow: venv
	$(BIN)/pytest -q -m "slow and not docker and not k8s" $(PYTEST_ARGS)

# A private dockerd per session (tests/docker/conftest.py); the first run builds the stack image
# offline (debootstrap + wheels, cached under ~/.cache/chaosctl), about 6 minutes.
test-docker: venv
	$(BIN)/pytest -q -m "docker and not k8s" tests/docker $(PYTEST_ARGS)

# tests/k8s (marked `k8s` by its conftest.py): a one-node Kubernetes v1.20.2 (etcd, apiserver,
# controller-manager, scheduler, kubelet, kube-proxy, dockerd) in a network namespace with only
# loopback. Binaries from scripts/k8s-build.sh (built once, ~6-10 minutes, then cached).
test-k8s: venv
	$(BIN)/pytest -q -m k8s tests/k8s $(PYTEST_ARGS)

test-all: venv
	$(BIN)/pytest -q -m "not docker and not k8s" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check chaosctl tests benchmarks stack

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
