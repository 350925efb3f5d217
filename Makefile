# Two commands: `make run` and `make test`. Both install what they need on a fresh Debian 12.
PY := .venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test bootstrap bootstrap-test lint typecheck pytest clean-var

bootstrap:
	@bash scripts/bootstrap.sh run

bootstrap-test:
	@bash scripts/bootstrap.sh test

## Start the whole stack (private PostgreSQL+TimescaleDB and Mosquitto unless URLs are set) with a demo fleet.
run: bootstrap
	@$(PY) -m hub run --demo

## Linters, type checks and the test suite against real services.
test: bootstrap-test lint typecheck pytest

lint:
	@.venv/bin/ruff check hub devices alerts simulators tests

typecheck:
	@.venv/bin/mypy

# Property tests use the derandomized "ci" profile here; HYPOTHESIS_PROFILE=random make pytest draws afresh.
pytest:
	@HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci} $(PY) -m pytest

## Remove the private services' data (PostgreSQL cluster, broker persistence, demo credentials).
clean-var:
	rm -rf var
