# The two commands of the README: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench ldap-tools clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "syncd needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

# OpenLDAP's server and client tools, from the distribution (Debian/Ubuntu).
ldap-tools:
	@if [ -x /usr/sbin/slapd ] && command -v ldapsearch >/dev/null; then exit 0; fi; \
	echo "Installing slapd and ldap-utils with apt-get..."; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else \
	  echo "slapd is missing and this user cannot install it: run 'apt-get install -y slapd ldap-utils' as root"; exit 1; fi; \
	command -v apt-get >/dev/null || { echo "No apt-get here: install OpenLDAP's slapd (2.5+) and ldap-utils, then retry"; exit 1; }; \
	$$SUDO apt-get update -qq && \
	$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null && \
	echo "slapd installed." || { echo "apt-get could not install slapd and ldap-utils"; exit 1; }

demo: $(STAMP) ldap-tools
	$(BIN)/syncd demo

test: $(STAMP) ldap-tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest

bench: $(STAMP) ldap-tools
	$(BIN)/python -m bench

clean:
	rm -rf var .pytest_cache .hypothesis
