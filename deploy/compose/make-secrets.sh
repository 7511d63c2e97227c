#!/bin/sh
# Random secrets for deploy/compose.yaml, one file each, without a trailing newline.
# The folder is readable by you only; the files are world-readable inside it because the
# containers read them under their own user ids (compose bind-mounts them as they are).
set -eu
dir="$(dirname "$0")/secrets"
mkdir -p "$dir" && chmod 0700 "$dir"
for name in ldap-admin-password ldap-syncd-password ldap-app-password db-password web-signing-key; do
  if [ ! -s "$dir/$name" ]; then
    head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | head -c 32 > "$dir/$name"
    chmod 0644 "$dir/$name"
    echo "wrote $dir/$name"
  fi
done
