"""The checks the configuration's sections share, and the error they raise: each names the
field at fault (ostinato/service_config.py, ostinato/gateway_config.py, ostinato/config.py)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import MODEL_FORMATS


class ConfigError(ValueError):
    """A configuration value is missing, unknown or invalid; the message names the field."""


def check_tokenizer_spec(spec: str, field_name: str) -> None:
    """The served model's tokenizer (ostinato/tokenizers.py): sim or hf:<name or path>."""
    if spec != "sim" and not (spec.startswith("hf:") and len(spec) > 3):
        raise ConfigError(f"{field_name}: must be 'sim' or 'hf:<tokenizer name or path>', "
                          f"got {spec!r}")


def check_numbers(section: str, cfg: object, *, positive: tuple[str, ...] = (),
                  non_negative: tuple[str, ...] = ()) -> None:
    """Sizes, limits and periods that only make sense above zero (or at it: "0: off" or
    "unbounded", as each field's comment says)."""
    for name in positive:
        if not (value := getattr(cfg, name)) > 0:  # (nan too)
            raise ConfigError(f"{section}.{name}: must be positive, got {value!r}")
    for name in non_negative:
        if not (value := getattr(cfg, name)) >= 0:
            raise ConfigError(f"{section}.{name}: must be >= 0, got {value!r}")


def check_http_url(url: str, field_name: str) -> None:
    """An engine's base URL: http(s)://host[:port][/path], the port in range."""
    try:
        parts = urlsplit(url)  # (ValueError for a bad IPv6 host: "http://[bad")
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = urlsplit(""), False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigError(f"{field_name}: expected http://host:port (an engine's base URL), "
                          f"got {url!r}")


# the ports a service may go without (-1: off); the others are its gRPC port or an
# engine's, which gRPC would take -1 for 65535 (a walkthrough's gateway served there)
OPTIONAL_PORTS = ("http_port", "metrics_port")


def check_port(name: str, number: int) -> None:
    """A port field's value: 0..65535 (0: a free one), -1 (off) too for OPTIONAL_PORTS."""
    optional = name.endswith(OPTIONAL_PORTS)
    if not (-1 if optional else 0) <= number <= 65535:
        raise ConfigError(f"{name}: a port is 0..65535 (0: a free one"
                          + (", -1: off" if optional else "") + f"), got {number}")


def check_otlp_endpoint(endpoint: str) -> None:
    """An OTLP collector: http(s)://host:port[/path] or host:port. Refused as the config is
    read, not when a service starts its exporter (a walkthrough: a traceback from the
    planner, or nothing said at all)."""
    field_name = "telemetry.otlp_endpoint"
    if "://" in endpoint:
        try:
            check_http_url(endpoint, field_name)
        except ConfigError:
            raise ConfigError(f"{field_name}: expected http(s)://host:port or host:port, got "
                              f"{endpoint!r}") from None
        return
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"{field_name}: expected host:port or http(s)://host:port, got "
                          f"{endpoint!r}")


TOOL_FORMATS = MODEL_FORMATS  # a served model's (ostinato/tool_formats.py)


def check_reasoning_format(name: str, field_name: str) -> None:
    """"" (a model that does not think) or one of REASONING_FORMATS."""
    if name and name not in REASONING_FORMATS:
        raise ConfigError(f"{field_name}: must be empty (no reasoning) or one of "
                          f"{', '.join(REASONING_FORMATS)}, got {name!r}")


def check_harmony_pair(tool_format: str, reasoning_format: str, tool_field: str,
                       reasoning_field: str) -> None:
    """gpt-oss's messages carry both its thinking and its calls: both formats or neither."""
    if (tool_format == "gpt-oss") != (reasoning_format == "gpt-oss"):
        raise ConfigError(f"{tool_field} and {reasoning_field}: gpt-oss (harmony) is both "
                          f"formats or neither, got {tool_format!r} and {reasoning_format!r} "
                          f"(ostinato up: --tool-call-parser gpt-oss --reasoning-parser gpt-oss)")


def check_tool_format(name: str, field_name: str) -> None:
    if name not in TOOL_FORMATS:
        raise ConfigError(f"{field_name}: must be one of {', '.join(TOOL_FORMATS)}, got {name!r}")


def check_tenant_names(tenants: Iterable[str], field_name: str, *, keyed: bool = False) -> None:
    """Tenant names as the tenancy data in Redis takes them (cache/tenant_directory.py);
    `keyed`: tenants that hold keys, never open mode's tenant of callers without one."""
    # Imported here: cache.tenant_directory imports ostinato.config, which imports this module.
    from cache.tenant_directory import InvalidTenancy, check_keyed_tenant, check_tenant

    for tenant in tenants:
        try:
            (check_keyed_tenant if keyed else check_tenant)(tenant)
        except InvalidTenancy as exc:
            raise ConfigError(f"{field_name}: {exc}") from None
