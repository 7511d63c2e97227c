#!/bin/sh
# Install the Debian/Ubuntu packages named as arguments when they are missing.
# Used by `make demo` (slapd ldap-utils), `make test` (the same, plus chromium, 389-ds-base…) and the venv step.
set -eu
missing=""
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "Installing missing packages:$missing"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No apt-get here: install$missing yourself (OpenLDAP slapd 2.5+, its client tools, Chromium, 389 Directory Server), then retry." >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
  echo "This user cannot install packages: run 'apt-get install -y$missing' as root, then retry." >&2
  exit 1
fi
$SUDO apt-get update -qq
# noninteractive: slapd's package configuration would otherwise ask for an admin password.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
echo "Installed:$missing"
