# Two commands a new user needs (see README):
#   make demo   set everything up, run chaos/rack_breaker.yaml on the embedded cluster under load, print the summary and report
#   make test   set everything up and run the whole test suite (what CI runs)

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system demo test lint bench image clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages (iptables, chromium, prometheus): installed as root when missing, else the tests needing them skip
system:
	./tools/system-deps.sh

setup: system $(STAMP)

demo: setup
	$(BIN)/python -m cluster.deploy.demo

lint: setup
	$(BIN)/ruff check .

# Docker: installed and started as root when missing; tests/docker skip with its message when it cannot run
test: setup lint
	-./tools/docker-setup.sh
	$(BIN)/pytest -q

image: setup
	./tools/docker-setup.sh
	$(BIN)/python -m cluster.deploy.docker_image

bench: setup
	$(BIN)/python bench/node_throughput.py

clean:
	rm -rf $(VENV) run
