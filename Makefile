# The two commands of the README: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# One stamp per install: `make demo` installs the package alone, `make test` with its test extras.
VENV_STAMP := $(VENV)/.venv-stamp
DEMO_STAMP := $(VENV)/.demo-stamp
TEST_STAMP := $(VENV)/.test-stamp

.PHONY: demo test bench screenshots demo-packages test-packages clean

$(VENV_STAMP):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "syncd needs Python 3.11 or newer"; exit 1; }
	@# A fresh Debian/Ubuntu ships Python without ensurepip: venv needs the pythonX.Y-venv package.
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || sh deploy/dev/ensure-packages.sh \
		"$$($(PYTHON) -c 'import sys; print(f"python3.{sys.version_info.minor}-venv")')"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@touch $@

$(DEMO_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e .
	@touch $@

$(TEST_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# System packages from the distribution (Debian/Ubuntu): OpenLDAP for both; for the tests, Chromium
# (pages), systemd (unit checks), prometheus (promtool checks the alert rules), apache2 (an
# application checking rights with mod_authnz_ldap, tests/apps) and 389-ds-base (the directory
# adapter's contract suite and scenarios also run on 389 Directory Server) and samba (the same, on a
# Samba Active Directory domain controller; it runs as root only).
demo-packages:
	@sh deploy/dev/ensure-packages.sh slapd ldap-utils

test-packages:
	@sh deploy/dev/ensure-packages.sh slapd ldap-utils chromium openssl systemd prometheus apache2 389-ds-base samba

demo: $(DEMO_STAMP) demo-packages
	$(BIN)/syncd demo

# The suite on TEST_WORKERS processes (pytest-xdist), a test file per worker at a time (its module
# fixtures are started once); the files holding `long` tests go first (tests/conftest.py). On two
# cores: 14 min against 23 min on one worker (2026-12-07). `make test TEST_WORKERS=0` runs it in
# this process.
TEST_WORKERS ?= 2

test: $(TEST_STAMP) test-packages
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check syncd tests bench
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(TEST_STAMP) demo-packages   # the web benchmark drives syncd web with httpx, a test extra
	$(BIN)/python -m bench

# The PNGs docs/web.md shows (docs/images/), taken by the desk's browser test in a real headless
# Chromium; not part of `make test`, which saves them in a throwaway folder.
screenshots: $(TEST_STAMP) test-packages
	SYNCD_SCREENSHOTS=docs/images $(BIN)/pytest -q -p no:cacheprovider tests/web/test_desk_browser.py \
		tests/web/test_desk_reviews.py

clean:
	rm -rf var .pytest_cache .hypothesis
