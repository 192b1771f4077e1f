# The two commands of the README: `make run` and `make test`. Both create the virtual environment
# and install the suite into it when needed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WORKDIR ?= .mlstages
ARGS ?=
# Image registry prefix for `make images`/`make push` (default ghcr.io/mlstages); the compiled YAML
# takes the same prefix from `mlstages compile --registry`.
REGISTRY ?=
# The Python image the suite's base image builds on (default python:3.11-slim-bookworm, or one made
# with debootstrap when no registry is reachable).
PYTHON_IMAGE ?=
CONTAINERS := $(PY) -m mlstages.tooling.containers $(if $(REGISTRY),--registry $(REGISTRY))

# make submit / make schedule: the Kubeflow Pipelines API (default: $$KF_PIPELINES_ENDPOINT), the
# pipeline (default: training for submit, monitoring for schedule) and the schedule (hourly).
HOST ?=
PIPELINE ?=
CRON ?= 0 0 * * * *

.PHONY: help install run monitor infer serve submit schedule test lint compile compile-check bench clean images push lock e2e-containers

help:
	@echo "make run      run the training pipeline locally (kfp.local + embedded object store)"
	@echo "make monitor  drift monitoring locally: simulate a drifted window, detect it, retrain (ARGS=--no-drift: stable)"
	@echo "make infer    batch inference locally: score new rows with the champion of \`make run\` (ARGS='--data FILE --set id_column=...')"
	@echo "make test     lint and run the test suite"
	@echo "make serve    serve a model locally: make serve MODEL=gs://... (default: the champion)"
	@echo "make submit   run a pipeline on Kubeflow: make submit HOST=https://KUBEFLOW/pipeline ARGS='--data gs://... --wait'"
	@echo "make schedule a recurring run on Kubeflow (monitoring, hourly): make schedule HOST=... CRON='0 0 * * * *' ARGS=..."
	@echo "make compile  regenerate every component/pipeline YAML and component README"
	@echo "make images   build every image with podman or docker (REGISTRY=... to tag for your registry)"
	@echo "make push     push the images: make push REGISTRY=registry.example.com/team"
	@echo "make e2e-containers  build the images and run the training pipeline inside them (CI runs it)"
	@echo "make lock     resolve the dependencies again into containers/constraints.txt"
	@echo "make bench    run the benchmarks and write benchmarks/results/"
	@echo "make clean    remove local runs and the embedded store's data ($(WORKDIR))"

$(INSTALLED): pyproject.toml containers/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --constraint containers/constraints.txt -e '.[dev,serve,local,sql,containers,kubeflow-registry,dask,dask-kubernetes,lightgbm]'
	@touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	$(VENV)/bin/mlstages run training --workdir $(WORKDIR) $(ARGS)

monitor: $(INSTALLED)
	$(VENV)/bin/mlstages monitor --workdir $(WORKDIR) $(ARGS)

infer: $(INSTALLED)
	$(VENV)/bin/mlstages run inference --workdir $(WORKDIR) $(ARGS)

serve: $(INSTALLED)
	$(VENV)/bin/mlstages serve $(MODEL) --workdir $(WORKDIR) $(ARGS)

submit: $(INSTALLED)
	$(VENV)/bin/mlstages submit $(PIPELINE) $(if $(HOST),--host $(HOST)) $(ARGS)

schedule: $(INSTALLED)
	$(VENV)/bin/mlstages schedule $(PIPELINE) $(if $(HOST),--host $(HOST)) --cron "$(CRON)" $(ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(VENV)/bin/pytest $(ARGS)
	@if [ "$$CI" = "true" ]; then \
		if containers/install-podman; then $(MAKE) --no-print-directory e2e-containers; \
		else echo "podman cannot be installed here: the container e2e run is skipped"; fi; \
	else echo "(the container path: make e2e-containers; CI runs it)"; fi

images: $(INSTALLED)
	$(CONTAINERS) build $(if $(PYTHON_IMAGE),--python-image $(PYTHON_IMAGE))

push: $(INSTALLED)
	@test -n "$(REGISTRY)" || { echo "make push needs REGISTRY=..., e.g. make push REGISTRY=ghcr.io/myorg" >&2; exit 2; }
	$(CONTAINERS) push

lock: $(INSTALLED)
	$(CONTAINERS) lock

e2e-containers: $(INSTALLED)
	containers/install-podman
	$(CONTAINERS) e2e --workdir $(WORKDIR) $(if $(PYTHON_IMAGE),--python-image $(PYTHON_IMAGE))

compile: $(INSTALLED)
	$(VENV)/bin/mlstages compile

compile-check: $(INSTALLED)
	$(VENV)/bin/mlstages compile --check

bench: $(INSTALLED)
	$(PY) -m pip install --quiet --constraint containers/constraints.txt -e '.[bench]'
	$(PY) benchmarks/run_all.py $(ARGS)

clean:
	rm -rf $(WORKDIR)
