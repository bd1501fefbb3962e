"""Reading the config file `--config` names: a regular file, or anything else readable
once (a pipe: `ostinato up --config <(...)`, /dev/stdin), whose text is kept for the
command's later loads."""

from __future__ import annotations

from pathlib import Path

from ostinato.config_checks import ConfigError

# Config "files" that can be read once only (a pipe: `--config <(...)`, /dev/stdin), by path:
# a command that loads its config more than once gets the same text each time.
_READ_ONCE: dict[str, str] = {}


def config_text(p: Path) -> str:
    """The config file's text: a regular file, or anything else readable (a pipe)."""
    if str(p) in _READ_ONCE:
        return _READ_ONCE[str(p)]
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a config file")
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot be read ({exc})") from None
    if not p.is_file():
        _READ_ONCE[str(p)] = text
    return text
