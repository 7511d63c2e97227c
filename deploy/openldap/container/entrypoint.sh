#!/bin/sh
# First start: render syncd's cn=config template, load it with slapadd, apply the production
# ACLs and indexes, add the suffix and the service accounts. Later starts: just run slapd.
# Environment: LDAP_SUFFIX (dc=example,dc=org), LDAP_ADMIN_PASSWORD_FILE,
# LDAP_SYNCD_PASSWORD_FILE, LDAP_APP_PASSWORD_FILE (secret files).
set -eu
SUFFIX=${LDAP_SUFFIX:-dc=example,dc=org}
CONF=/etc/ldap/slapd.d
SHARE=/usr/share/syncd
SOCK=ldapi://%2Frun%2Fslapd%2Fldapi
install -d -o openldap -g openldap /run/slapd

hash_of() { slappasswd -n -T "$1"; }
render() {
  sed -e "s#@SUFFIX@#$SUFFIX#g" -e "s#@BASE@#$SUFFIX#g" -e "s#@ROOTDN@#cn=admin,$SUFFIX#g" \
      -e "s#@ROOTPW@#$ROOTPW#g" -e "s#@DBDIR@#/var/lib/ldap#g" -e "s#@MODULEDIR@#/usr/lib/ldap#g" \
      -e "s#@SCHEMADIR@#/etc/ldap/schema#g" -e "s#@SYNCD_SCHEMA@#$SHARE/schema/openldap/syncd.ldif#g" \
      -e "s#@PIDFILE@#/run/slapd/slapd.pid#g" -e "s#@ARGSFILE@#/run/slapd/slapd.args#g" \
      -e "s#@SYNCD_PASSWORD_HASH@#$SYNCD_HASH#g" -e "s#@APP_PASSWORD_HASH@#$APP_HASH#g" "$1"
}

if [ ! -e "$CONF/cn=config.ldif" ]; then
  ROOTPW=$(hash_of "$LDAP_ADMIN_PASSWORD_FILE")
  SYNCD_HASH=$(hash_of "$LDAP_SYNCD_PASSWORD_FILE")
  APP_HASH=$(hash_of "$LDAP_APP_PASSWORD_FILE")
  render $SHARE/openldap/slapd.ldif.in > /tmp/slapd.ldif
  slapadd -n0 -F "$CONF" -l /tmp/slapd.ldif
  chown -R openldap:openldap "$CONF" /var/lib/ldap
  slapd -h "$SOCK" -F "$CONF" -u openldap -g openldap
  for _ in $(seq 1 50); do ldapsearch -Q -Y EXTERNAL -H "$SOCK" -s base -b cn=config dn >/dev/null 2>&1 && break; sleep 0.2; done
  for f in 30-database.ldif 50-acls.ldif; do
    render "$SHARE/openldap/production/$f" > "/tmp/$f"
    ldapmodify -c -Q -Y EXTERNAL -H "$SOCK" -f "/tmp/$f" || true   # -c: values the template has already
  done
  printf 'dn: %s\nobjectClass: domain\ndc: %s\n' "$SUFFIX" "$(echo "$SUFFIX" | sed 's/^dc=\([^,]*\).*/\1/')" > /tmp/base.ldif
  render $SHARE/openldap/production/60-service-accounts.ldif > /tmp/accounts.ldif
  ldapadd -x -H "$SOCK" -D "cn=admin,$SUFFIX" -y "$LDAP_ADMIN_PASSWORD_FILE" -f /tmp/base.ldif
  ldapadd -x -H "$SOCK" -D "cn=admin,$SUFFIX" -y "$LDAP_ADMIN_PASSWORD_FILE" -f /tmp/accounts.ldif
  kill "$(cat /run/slapd/slapd.pid)"
  while [ -e /run/slapd/slapd.pid ]; do sleep 0.2; done
  rm -f /tmp/*.ldif
fi
exec slapd -d 0 -h "ldap:/// $SOCK" -F "$CONF" -u openldap -g openldap
