# Two commands matter: `make grade` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
# The exact torch build; override e.g. `make test TORCH=torch==2.14.1` (a CUDA build is large).
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
SUBMISSIONS ?= submissions
OUT ?= grades
DIST ?= dist
GRADE_ARGS ?=

.PHONY: install grade test check-reference release clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

grade: install
	$(BIN)/grader grade-course --submissions $(SUBMISSIONS) --out $(OUT) $(GRADE_ARGS)

check-reference: install
	$(BIN)/grader check-reference

# What students receive: dist/<assignment>/ (notebook, public data, self-checks), refused
# if any hidden seed, reference value, check code or solution line would be in it.
release: install
	$(BIN)/grader release --out $(DIST)

test: install check-reference
	$(BIN)/python -m pytest -q

clean:
	rm -rf .grader-cache

# Grading speed vs otter-grader; results in benchmarks/results.md. Small run: BENCH_ARGS="--regression-ab 6 --abcde 2 --otter 3"
.PHONY: benchmark
benchmark: install
	$(BIN)/python benchmarks/grading_speed.py $(BENCH_ARGS)
