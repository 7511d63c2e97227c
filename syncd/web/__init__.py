"""The correspondents' web hook: signed decision links, and the portal's HMAC-signed API.

``create_app`` (``syncd.web.app``) builds the app. Nothing below the web imports this package:
the signed links the mails carry are ``syncd.mail.links``.
"""

from syncd.web.app import create_app

__all__ = ["create_app"]
