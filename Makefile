# One-command set-up and runs. `make demo` and `make test` build .venv on first use; later runs reuse it
# (the stamp .venv/.installed is only rebuilt when setup.py changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
DEMO_DATA := datasets/demo/.complete

.PHONY: install demo demo-data test clean-demo

install: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: an unpinned torch would download several GB (shared/docs/stack.md).
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1
	$(PIP) install -q numpy cython wheel "setuptools>=77.0.3,<82"
	# BasicSR's sdist imports torch in setup.py: it must be built without isolation, after torch.
	$(PIP) install -q --no-build-isolation basicsr==1.4.2
	$(PIP) install -q --no-build-isolation -e ".[mmagic,test]"
	touch $(STAMP)

demo-data: $(DEMO_DATA)

$(DEMO_DATA): $(STAMP) tools/data/make_demo_data.py
	$(PY) tools/data/make_demo_data.py --output datasets/demo

demo: $(DEMO_DATA)
	$(PY) tools/classic/demo.py

# One pytest worker per core; a test file stays on one worker (its module-scoped trained checkpoints are shared).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest tests -n $(TEST_WORKERS) --dist loadfile

clean-demo:
	rm -rf datasets/demo experiments/*demo* results/*demo* tb_logger/*demo*
