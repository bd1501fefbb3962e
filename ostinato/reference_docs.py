"""Writes the generated references in docs/reference/ (`make docs`): the configuration
(ostinato/config_reference.py), the gRPC API (ostinato/proto_reference.py) and the HTTP API
(ostinato/openapi_reference.py). Each module renders its page; tests fail when a page is
stale."""

from __future__ import annotations

import sys

from ostinato import config_reference, openapi_reference, proto_reference

REFERENCES = (config_reference, proto_reference, openapi_reference)


def main() -> int:
    for ref in REFERENCES:
        ref.OUT.parent.mkdir(parents=True, exist_ok=True)
        ref.OUT.write_text(ref.render())
        print(f"wrote {ref.OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
