"""The HTTP API reference (docs/reference/http.md), generated from the OpenAPI document the
gateway serves at /openapi.json (gateway/openapi.py), for a gateway with the default config.

`make docs` (`python -m ostinato.reference_docs`) rewrites the file (`make docs`);
tests/test_openapi_reference.py fails when it is stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.openapi import document
from ostinato.config import GatewayConfig

OUT = Path(__file__).resolve().parents[1] / "docs" / "reference" / "http.md"

_LIMITS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="),
           ("exclusiveMaximum", "<"), ("minLength", "length >="), ("maxLength", "length <="),
           ("minItems", "items >="), ("maxItems", "items <="), ("pattern", "matches"))


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def type_of(schema: dict[str, Any]) -> str:
    """A schema as a short phrase: its type, enum or reference, and its limits."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    kind = schema.get("type")
    if kind is None:
        return "any"
    if isinstance(kind, list):
        text = " or ".join(kind)
    elif kind == "array":
        text = f"array of {type_of(schema.get('items', {}))}"
    elif kind == "object" and schema.get("properties"):
        text = "object (" + ", ".join(f"`{k}`" for k in schema["properties"]) + ")"
    else:
        text = str(kind)
    limits = [f"{word} `{schema[key]}`" for key, word in _LIMITS if key in schema]
    return text + (f", {', '.join(limits)}" if limits else "")


def _request_schemas(doc: dict[str, Any]) -> set[str]:
    """The names of the schemas a request body uses (through $refs): "Other fields are
    refused" is said of those only, not of what the gateway answers."""
    prefix = "#/components/schemas/"
    schemas = doc["components"]["schemas"]
    found: set[str] = set()
    stack: list[Any] = [op["requestBody"] for item in doc["paths"].values()
                        for op in item.values() if "requestBody" in op]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix):] not in found:
                found.add(ref[len(prefix):])
                stack.append(schemas[ref[len(prefix):]])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _fields(schema: dict[str, Any], request: bool = True) -> list[str]:
    if "properties" not in schema:
        return [f"One of: {type_of(schema)}."]
    required = set(schema.get("required", ()))
    rows = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        rows.append(f"| `{name}` | {_cell(type_of(prop))} | {'yes' if name in required else ''}"
                    f" | {_cell(prop.get('description', ''))} |")
    if schema.get("additionalProperties") is False:
        rows.append("\nOther fields are refused (400)." if request else "\nNo other fields.")
    return rows


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    key = "none" if op.get("security") == [] else "required"
    out = [f"### `{method.upper()} {path}`", "", f"**{op['summary']}.** {op['description']}",
           "", f"API key: {key}.", ""]
    params = op.get("parameters", [])
    if params:
        out += ["| parameter | in | type | description |", "|---|---|---|---|"]
        out += [f"| `{p['name']}` | {p['in']} | {_cell(type_of(p['schema']))} | "
                f"{_cell(p.get('description', ''))} |" for p in params]
        out.append("")
    body = op.get("requestBody")
    if body:
        schema = body["content"]["application/json"]["schema"]
        out += [f"Request body ({'required' if body.get('required') else 'optional'}, "
                f"application/json): {type_of(schema)}.", ""]
    out += ["| status | content | meaning |", "|---|---|---|"]
    for status, resp in op["responses"].items():
        content = ", ".join(f"{media}: {type_of(c['schema'])}"
                            for media, c in resp.get("content", {}).items())
        headers = ", ".join(f"`{h}`" for h in resp.get("headers", {}))
        out.append(f"| {status} | {_cell(content)} | {_cell(resp['description'])}"
                   f"{' (headers: ' + headers + ')' if headers else ''} |")
    return [*out, ""]


def render() -> str:
    doc = document(GatewayConfig())
    out = ["# HTTP API reference", "",
           "Generated from the OpenAPI document the gateway serves at `GET /openapi.json` "
           "(gateway/openapi.py) by `make docs` (`python -m ostinato.reference_docs`) (`make docs`); do not "
           "edit by hand. Limits shown are the defaults of the `gateway` config section "
           "([config reference](config.md#gateway)); a gateway's own document states its own.",
           "", doc["info"]["description"], "", "## Routes", "",
           "| method | path | summary | API key |", "|---|---|---|---|"]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            anchor = f"{method}-{path}".lower().replace("/", "").replace("{", "").replace(
                "}", "").replace(".", "").replace("_", "_")
            out.append(f"| {method.upper()} | [`{path}`](#{anchor}) | {op['summary']} | "
                       f"{'none' if op.get('security') == [] else 'required'} |")
    out += ["", "## Operations", ""]
    for path, item in doc["paths"].items():
        for method, op in item.items():
            out += _operation(path, method, op)
    out += ["## Schemas", ""]
    requests = _request_schemas(doc)
    for name, schema in doc["components"]["schemas"].items():
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [schema["description"], ""]
        out += [*_fields(schema, name in requests), ""]
    return "\n".join(out).rstrip() + "\n"
