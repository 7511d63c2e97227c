"""Print the API's OpenAPI document: ``python -m syncd.web.openapi > docs/openapi.json``.

A test checks that the committed ``docs/openapi.json`` is exactly what the app serves.
"""

from __future__ import annotations

import json
import sys


def document() -> str:
    from syncd.web.app import build_openapi, create_app

    def no_runtime():
        raise RuntimeError("the OpenAPI document needs no runtime")

    app = create_app(no_runtime, clients={})
    return json.dumps(build_openapi(app), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
