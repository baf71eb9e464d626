"""Run settings from a YAML file (``--config run.yaml``); flags given on the command line win."""

from __future__ import annotations

import argparse
import difflib

import yaml


class ConfigError(ValueError):
    """A configuration file, or a setting, that cannot be used."""


def require(ok: bool, message: str) -> None:
    """Refuse a setting with a message naming it and the fix."""
    if not ok:
        raise ConfigError(message)


def load_yaml(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path!r} does not exist. Check the path given to --config.") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path!r} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of setting: value, not {type(data).__name__}.")
    return data


def settings_from_yaml(path: str, parser: argparse.ArgumentParser) -> dict:
    """The file's settings as parser defaults; unknown keys are refused with the nearest known name."""
    known = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    # a flag's own name works as a key too where it differs from the setting (search_warmup_fraction)
    spelled = {o.lstrip("-").replace("-", "_"): a.dest for a in parser._actions for o in a.option_strings}
    values = {}
    for key, value in load_yaml(path).items():
        dest = str(key).replace("-", "_")
        dest = dest if dest in known else spelled.get(dest, dest)
        if dest not in known:
            close = difflib.get_close_matches(dest, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"config file {path!r}: unknown setting {key!r}.{hint} Settings are the command's flag names "
                f"without dashes, e.g. budget, learning_rate, epochs."
            )
        action = known[dest]
        if action.choices is not None and value not in action.choices:
            raise ConfigError(f"config file {path!r}: {key} must be one of {list(action.choices)}, not {value!r}.")
        if action.type is not None and value is not None and not isinstance(value, list):
            try:
                value = action.type(value)
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"config file {path!r}: {key} = {value!r} is not a valid {action.type.__name__}."
                ) from err
        values[dest] = value
    return values
