"""The correspondents' web hook: signed decision links, and the portal's HMAC-signed API.

``create_app`` lives in ``syncd.web.app``; it is imported lazily so that importing the package
does not load the web framework. The signed links the mails carry are ``syncd.mail.links``.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any):
    from syncd.web.app import create_app as _create_app
    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
