# Two commands for a fresh machine: `make demo` (the main job) and `make test` (the test suite).
# Both create .venv and install what they need first; the install is skipped when nothing changed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PACKAGES := dataset-fashion-mnist chromium
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED := False
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-all lint format install system-packages clean

demo: $(STAMP)
	$(BIN)/sslzoo datasets show fashion-mnist --out outputs/fashion-mnist-samples.png
	$(BIN)/sslzoo benchmark --preset quick

test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP) lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

install: $(STAMP)

# pyproject.toml says what the package accepts; constraints.txt pins this repository's exact environment (torch
# included: without it, a fresh machine would take the newest CUDA torch the ranges admit).
$(STAMP): pyproject.toml constraints.txt
	@$(MAKE) --no-print-directory system-packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Debian packages: the full Fashion-MNIST and Chromium for the browser tests. Installed when we are root with
# apt-get; otherwise one clear message and the tests that need them skip.
system-packages:
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else \
		echo "note: Debian packages$$missing are missing; run 'sudo apt-get install$$missing' (tests needing them skip)"; \
	fi

clean:
	rm -rf $(VENV) outputs .pytest_cache
