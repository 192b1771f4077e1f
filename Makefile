# The two commands of the README: `make run` and `make test`. Both create the virtual environment
# and install the suite into it when needed.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WORKDIR ?= .mlstages
ARGS ?=
# make submit / make schedule: the Kubeflow Pipelines API (default: $$KF_PIPELINES_ENDPOINT), the
# pipeline (default: training for submit, monitoring for schedule) and the schedule (hourly).
HOST ?=
PIPELINE ?=
CRON ?= 0 0 * * * *

.PHONY: help install run monitor serve submit schedule test lint compile compile-check bench clean

help:
	@echo "make run      run the training pipeline locally (kfp.local + embedded object store)"
	@echo "make monitor  drift monitoring locally: simulate a drifted window, detect it, retrain (ARGS=--no-drift: stable)"
	@echo "make test     lint and run the test suite"
	@echo "make serve    serve a model locally: make serve MODEL=gs://... (default: the champion)"
	@echo "make submit   run a pipeline on Kubeflow: make submit HOST=https://KUBEFLOW/pipeline ARGS='--data gs://... --wait'"
	@echo "make schedule a recurring run on Kubeflow (monitoring, hourly): make schedule HOST=... CRON='0 0 * * * *' ARGS=..."
	@echo "make compile  regenerate every component/pipeline YAML and component README"
	@echo "make bench    run the benchmarks and write benchmarks/results/"
	@echo "make clean    remove local runs and the embedded store's data ($(WORKDIR))"

$(INSTALLED): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,serve]'
	@touch $@

install: $(INSTALLED)

run: $(INSTALLED)
	$(VENV)/bin/mlstages run training --workdir $(WORKDIR) $(ARGS)

monitor: $(INSTALLED)
	$(VENV)/bin/mlstages monitor --workdir $(WORKDIR) $(ARGS)

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

compile: $(INSTALLED)
	$(VENV)/bin/mlstages compile

compile-check: $(INSTALLED)
	$(VENV)/bin/mlstages compile --check

bench: $(INSTALLED)
	$(PY) benchmarks/run_all.py $(ARGS)

clean:
	rm -rf $(WORKDIR)
