"""syncd: the access-rights (habilitations) workflow daemon on top of an LDAP directory."""

__version__ = "0.1.0"
