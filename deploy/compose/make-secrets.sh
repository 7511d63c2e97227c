#!/bin/sh
# Random secrets for deploy/compose.yaml, one file each, without a trailing newline.
# The folder is readable by you only; the files are world-readable inside it because the
# containers read them under their own user ids (compose bind-mounts them as they are).
set -eu
dir="$(dirname "$0")/secrets"
mkdir -p "$dir" && chmod 0700 "$dir"
random() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 32; }
write() {   # write NAME CONTENT: only when the file is missing or empty (a rerun keeps the secrets)
  if [ ! -s "$dir/$1" ]; then
    printf '%s' "$2" > "$dir/$1"
    chmod 0644 "$dir/$1"
    echo "wrote $dir/$1"
  fi
}
for name in ldap-admin-password ldap-syncd-password ldap-app-password db-password web-signing-key; do
  write "$name" "$(random)"
done
# The web process's API clients (SYNCD_WEB__CLIENTS_FILE): the portal signs with this secret.
write web-clients "{\"portal\": \"$(random)\"}"
