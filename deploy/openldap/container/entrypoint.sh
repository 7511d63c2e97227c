#!/bin/sh
# First start: the new-server sequence of deploy/openldap/README.md — render syncd's cn=config
# template, load it with slapadd, add the suffix entry, then the "existing server" block (checks
# first, replaces, accounts). Later starts: just run slapd.
# Environment: LDAP_SUFFIX (dc=example,dc=org), LDAP_ADMIN_PASSWORD_FILE,
# LDAP_SYNCD_PASSWORD_FILE, LDAP_APP_PASSWORD_FILE (secret files). The folders and the user are
# the image's; the tests override them (SLAPD_CONF, SLAPD_DBDIR, SLAPD_RUN, SYNCD_SHARE,
# SLAPD_USER, SLAPD_URLS, SLAPD_MODULEDIR, SLAPD_SCHEMADIR) to run this script unprivileged.
set -eu
S=${LDAP_SUFFIX:-dc=example,dc=org}
B=$S
CONF=${SLAPD_CONF:-/etc/ldap/slapd.d}
DBDIR=${SLAPD_DBDIR:-/var/lib/ldap}
RUN=${SLAPD_RUN:-/run/slapd}
SHARE=${SYNCD_SHARE:-/usr/share/syncd}
USER_OPTS=${SLAPD_USER-openldap}
H=ldapi://$(printf %s "$RUN/ldapi" | sed 's#/#%2F#g')
URLS=${SLAPD_URLS:-ldap:///}
[ -n "$USER_OPTS" ] && USER_OPTS="-u $USER_OPTS -g $USER_OPTS"
mkdir -p "$RUN" "$DBDIR"
[ -n "${SLAPD_USER-openldap}" ] && chown "${SLAPD_USER-openldap}:${SLAPD_USER-openldap}" "$RUN"

if [ ! -e "$CONF/cn=config.ldif" ]; then
  TMP=$(mktemp -d)
  ROOTPW=$(slappasswd -n -T "$LDAP_ADMIN_PASSWORD_FILE")
  sed -e "s#@SUFFIX@#$S#g" -e "s#@ROOTDN@#cn=admin,$S#g" -e "s#@ROOTPW@#$ROOTPW#g" \
      -e "s#@DBDIR@#$DBDIR#g" -e "s#@MODULEDIR@#${SLAPD_MODULEDIR:-/usr/lib/ldap}#g" \
      -e "s#@SCHEMADIR@#${SLAPD_SCHEMADIR:-/etc/ldap/schema}#g" \
      -e "s#@SYNCD_SCHEMA@#$SHARE/schema/openldap/syncd.ldif#g" \
      -e "s#@PIDFILE@#$RUN/slapd.pid#g" -e "s#@ARGSFILE@#$RUN/slapd.args#g" \
      "$SHARE/openldap/slapd.ldif.in" > "$TMP/slapd.ldif"
  if [ "$(id -u)" != 0 ]; then   # unprivileged (tests): this user manages cn=config
    sed -i "s#gidNumber=0+uidNumber=0,#gidNumber=$(id -g)+uidNumber=$(id -u),#" "$TMP/slapd.ldif"
  fi
  mkdir -p "$CONF"
  slapadd -n0 -F "$CONF" -l "$TMP/slapd.ldif"
  [ -n "${SLAPD_USER-openldap}" ] && chown -R "${SLAPD_USER-openldap}:${SLAPD_USER-openldap}" "$CONF" "$DBDIR"
  # shellcheck disable=SC2086
  slapd -h "$H" -F "$CONF" $USER_OPTS
  for _ in $(seq 1 50); do ldapsearch -Q -Y EXTERNAL -H "$H" -s base -b cn=config dn >/dev/null 2>&1 && break; sleep 0.2; done
  DC=$(printf %s "$S" | sed 's/^dc=\([^,]*\).*/\1/')
  printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: %s\ndc: %s\n' "$S" "$DC" "$DC" |
    ldapadd -x -H "$H" -D "cn=admin,$S" -y "$LDAP_ADMIN_PASSWORD_FILE" >/dev/null

  # deploy/openldap/README.md, "An existing server (and the end of a new one)"
  cd "$SHARE/openldap/production"
  SYNCD_HASH=$(slappasswd -n -T "$LDAP_SYNCD_PASSWORD_FILE") APP_HASH=$(slappasswd -n -T "$LDAP_APP_PASSWORD_FILE")
  fill() { sed -e "s#@SUFFIX@#$S#g" -e "s#@BASE@#$B#g" -e "s#@SYNCD_PASSWORD_HASH@#$SYNCD_HASH#g" \
               -e "s#@APP_PASSWORD_HASH@#$APP_HASH#g" "$1"; }
  config() { ldapmodify -Q -Y EXTERNAL -H "$H" "$@" >/dev/null; }
  has() { ldapsearch -Q -LLL -Y EXTERNAL -H "$H" -b "$1" "$2" dn | grep -q '^dn:'; }
  loaded() { ldapsearch -Q -LLL -Y EXTERNAL -H "$H" -b cn=config '(objectClass=olcModuleList)' olcModuleLoad |
             grep -qi "^olcModuleLoad: {[0-9]*}$1"; }
  loaded memberof && loaded refint || config -c -f 10-modules.ldif
  has cn=schema,cn=config '(cn=*syncd)' || config -a -f "$SHARE/schema/openldap/syncd.ldif"
  fill 30-database.ldif | config
  has 'olcDatabase={1}mdb,cn=config' '(objectClass=olcMemberOfConfig)' || config -f 40-overlays.ldif
  fill 50-acls.ldif | config
  fill 60-service-accounts.ldif | ldapadd -x -H "$H" -D "cn=admin,$S" -y "$LDAP_ADMIN_PASSWORD_FILE" >/dev/null

  kill "$(cat "$RUN/slapd.pid")"
  while [ -e "$RUN/slapd.pid" ]; do sleep 0.2; done
  rm -rf "$TMP"
fi
# shellcheck disable=SC2086
exec slapd -d 0 -h "$URLS $H" -F "$CONF" $USER_OPTS
