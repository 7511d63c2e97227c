# The two commands of the README: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench demo-packages test-packages clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "syncd needs Python 3.11 or newer"; exit 1; }
	@# A fresh Debian/Ubuntu ships Python without ensurepip: venv needs the pythonX.Y-venv package.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || sh deploy/dev/ensure-packages.sh \
		"$$($(PYTHON) -c 'import sys; print(f"python3.{sys.version_info.minor}-venv")')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# System packages from the distribution (Debian/Ubuntu): OpenLDAP for both; for the tests, Chromium
# (pages), systemd (unit checks), prometheus (promtool checks the alert rules) and 389-ds-base
# (the directory adapter's contract suite and scenarios also run on 389 Directory Server).
demo-packages:
	@sh deploy/dev/ensure-packages.sh slapd ldap-utils

test-packages:
	@sh deploy/dev/ensure-packages.sh slapd ldap-utils chromium openssl systemd prometheus 389-ds-base

demo: $(STAMP) demo-packages
	$(BIN)/syncd demo

test: $(STAMP) test-packages
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

bench: $(STAMP) demo-packages
	$(BIN)/python -m bench

clean:
	rm -rf var .pytest_cache .hypothesis
