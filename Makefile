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

.PHONY: install sandbox-tools grade test assigned check-reference release benchmark clean

install: $(VENV)/.installed sandbox-tools

# Students' notebooks run inside bubblewrap (grader/run/sandbox.py). As root it is installed
# here; otherwise this says how, and `grader grade` refuses to run without it.
sandbox-tools:
	@if command -v bwrap >/dev/null && command -v setpriv >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq bubblewrap util-linux >/dev/null; \
	else \
	  echo "note: grading needs bubblewrap and setpriv; as root run: apt-get install bubblewrap util-linux"; \
	  echo "      (or your system's package manager), or grade with GRADE_ARGS=--no-sandbox"; \
	fi

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

grade: install
	$(BIN)/grader grade-course --submissions $(SUBMISSIONS) --out $(OUT) $(GRADE_ARGS)

# Each student notebook must be what its reference generates (grader assign): checked
# before any kernel starts, in well under a second, with a cell-by-cell diff.
assigned: install
	$(BIN)/python -m grader.author.assign --check

check-reference: install
	$(BIN)/grader check-reference

# What students receive: dist/<assignment>/ (notebook, public data, self-checks), refused
# if any hidden seed, reference value, check code or solution line would be in it.
release: install
	$(BIN)/grader assign
	$(BIN)/grader release --out $(DIST)

test: install assigned check-reference
	$(BIN)/python -m pytest -q --durations=20

clean:
	rm -rf .grader-cache

# Grading speed vs otter-grader; results in benchmarks/results.md. Small run: BENCH_ARGS="--regression-ab 6 --abcde 2 --otter 3"
benchmark: install
	$(BIN)/python benchmarks/grading_speed.py $(BENCH_ARGS)
