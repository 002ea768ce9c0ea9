# Customs Lab: the two commands.
#   make run    set up everything (first time: several minutes) and run the simulated site
#   make test   set up everything and run every test
# Set-up is incremental: a second `make run` starts the site within seconds.
# Variables: PYTHON (a CPython 3.11, default python3), ARGS (launch arguments for `make run`,
# e.g. ARGS="scenario:=smoke rate:=20"), PYTEST_ARGS (extra pytest arguments for `make test`).

SHELL := /bin/bash
VENV := .venv
PYTHON ?= python3
ARGS ?=
PYTEST_ARGS ?=

DEPS_STAMP := $(VENV)/.customs_lab_deps
BUILD_STAMP := ros2_ws/install/.customs_lab_build
BUILD_INPUTS := package.xml setup.py setup.cfg scripts/customs-lab \
	$(shell find ros2_ws/src/customs_interfaces launch config urdf maps -type f 2>/dev/null)

.PHONY: setup run test lint clean

setup: $(BUILD_STAMP)

$(DEPS_STAMP): requirements.txt constraints.txt tools/setup_env.sh tools/fix_wheel_cmake_paths.py \
		$(shell find tools/tf2_msgs -type f)
	PYTHON=$(PYTHON) tools/setup_env.sh system
	PYTHON=$(PYTHON) tools/setup_env.sh deps
	touch $@

$(BUILD_STAMP): $(DEPS_STAMP) $(BUILD_INPUTS)
	tools/setup_env.sh build
	touch $@

run: setup
	tools/with_env.sh customs-lab launch launch/site.launch.xml $(ARGS)

test: setup
	tools/setup_env.sh test-system
	tools/with_env.sh python -m pytest $(PYTEST_ARGS)

lint: setup
	tools/with_env.sh ruff check .

clean:
	rm -rf ros2_ws/build ros2_ws/install ros2_ws/log build
