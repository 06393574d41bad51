"""Typed, layered YAML configuration.

A config file may name a parent with ``extends: other.yaml`` (relative to itself);
the chain ends at ``base.yaml``, which declares every key with its default and so
its type. An overlay may only set keys the base declares (except inside the open
maps listed in ``OPEN_SECTIONS``, whose keys are the user's own), and only with a
value of the declared type. Strings may use ``${VAR}`` or ``${VAR:-default}``.
Every error names the key and the file it came from, so a bad deploy fails at
start-up and not an hour into a job.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]


def packaged_conf_dir() -> Path:
    """The default configs shipped inside the package (``custseg/conf``) as a folder on disk.

    In a checkout ``lib/custseg/conf`` links to the repository's ``conf/``; in an installed
    wheel they are package files (``pip install`` of the wheel alone can run ``custseg run``);
    from a zip (``spark-submit --py-files``) they are copied out once to a temporary folder.
    """
    res = resources.files("custseg").joinpath("conf")
    if isinstance(res, Path):
        return res
    if not res.is_dir():
        raise FileNotFoundError(
            "custseg/conf (the default configs) is missing from the package: rebuild the zip with "
            "deploy/package.sh or spark-submit.sh, which copy conf/*.yaml into it"
        )
    out = Path(tempfile.mkdtemp(prefix="custseg-conf-"))
    for item in res.iterdir():
        if item.name.endswith(".yaml"):
            (out / item.name).write_bytes(item.read_bytes())
    return out


DEFAULT_CONF_DIR = packaged_conf_dir()
DEFAULT_CONF = "local.yaml"

# Maps whose keys are chosen by the user (segment names, campaign ids, ...):
# an overlay may add keys there; the values are validated by the owning module.
OPEN_SECTIONS = frozenset(
    {
        "spark.conf",
        "sources",
        "segment.naming_rules",
        "marketing.campaigns",
        "marketing.consent.file.channel_values",
        "marketing.export.profiles",
    }
)

# What sources.<name> may set (each overrides the ingest key of the same name).
SOURCE_SETTINGS = ("on_unknown_fields", "require_success_marker", "csv_require_final_newline")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration problem; the message names the key and the file."""


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return type(value).__name__


def _compatible(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int) and not isinstance(default, bool):
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return _type_name(default) == _type_name(value)


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {_type_name(data)}")
    return data


def _chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """The files from base to ``path``, following ``extends``."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return [(path, data)]
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: key 'extends' must be a file name")
    return _chain(path.parent / parent, (*seen, path)) + [(path, data)]


def _merge(base: dict, over: dict, origin: dict, file: Path, prefix: str, strict: bool) -> None:
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if strict and key not in base:
            known = ", ".join(sorted(base)) or "(none)"
            raise ConfigError(f"{file}: unknown key '{dotted}' (known here: {known})")
        default = base.get(key)
        if isinstance(default, dict) and isinstance(value, dict):
            child_strict = strict and dotted not in OPEN_SECTIONS
            _merge(default, value, origin, file, dotted + ".", child_strict)
            continue
        if strict and key in base and not _compatible(default, value):
            raise ConfigError(
                f"{file}: key '{dotted}' must be a {_type_name(default)}, got {_type_name(value)} {value!r}"
            )
        base[key] = copy.deepcopy(value)
        origin[dotted] = file


def _interpolate(node: Any, env: Mapping[str, str], key: str, origin: dict, base_file: Path) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, env, f"{key}.{k}" if key else k, origin, base_file) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, f"{key}[{i}]", origin, base_file) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def sub(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        file = origin.get(key, base_file)
        raise ConfigError(f"{file}: key '{key}' needs environment variable {name}, which is not set")

    return _ENV_RE.sub(sub, node)


class Section(Mapping):
    """Read-only view of one mapping of the config; attribute or item access."""

    def __init__(self, data: dict, path: str, root: Config):
        self._data = data
        self._path = path
        self._root = root

    def _wrap(self, key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return Section(value, f"{self._path}{key}.", self._root)
        return value

    def __getitem__(self, key: str) -> Any:
        if key not in self._data:
            raise ConfigError(f"{self._root.file}: missing key '{self._path}{key}'")
        return self._wrap(key, self._data[key])

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._wrap(key, self._data[key]) if key in self._data else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict:
        return copy.deepcopy(self._data)


class Config(Section):
    """The effective configuration: base plus overlays, interpolated and validated."""

    def __init__(self, data: dict, file: Path, origin: dict[str, Path]):
        self.file = file
        self.origin = origin
        super().__init__(data, "", self)

    def get_path(self, dotted: str, default: Any = ...) -> Any:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if default is not ...:
                    return default
                raise ConfigError(f"{self.file}: missing key '{dotted}'")
            node = node[part]
        return node

    def source_of(self, dotted: str) -> Path:
        """The file that set ``dotted`` (for error messages)."""
        while dotted:
            if dotted in self.origin:
                return self.origin[dotted]
            dotted = dotted.rpartition(".")[0]
        return self.file

    def error(self, dotted: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source_of(dotted)}: key '{dotted}' {problem}")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Config:
        """A copy with dotted keys replaced (tests, CLI ``--set a.b=c``).

        Only keys the config declares (or keys inside an open map) may be set, and never a
        secret: ``--set`` values are process arguments, visible to every user of the machine
        (``ps``) and to cluster managers' step lists.
        """
        from custseg.redaction import is_secret_key

        data = copy.deepcopy(self._data)
        for dotted, value in overrides.items():
            if is_secret_key(dotted):
                raise ConfigError(
                    f"override: key '{dotted}' is a secret and cannot be set on the command line (process "
                    "arguments are visible to other users and in job listings); set it in the environment "
                    "or a secret store (pii.salt_env / pii.salt_secret for the PII salt)"
                )
            node, leaf, parent = _override_target(data, dotted)
            if leaf in node and not _compatible(node[leaf], value) and parent not in OPEN_SECTIONS:
                raise ConfigError(f"override: key '{dotted}' must be a {_type_name(node[leaf])}, got {value!r}")
            node[leaf] = value
        conf = Config(data, self.file, dict(self.origin))
        validate(conf)
        return conf

    def redacted(self) -> dict:
        """The config with every string under a secret-looking key masked (``custseg.redaction``)."""
        from custseg.redaction import redact_mapping

        return redact_mapping(self._data)

    def log_effective(self, logger: logging.Logger = log) -> None:
        logger.info("effective config from %s:\n%s", self.file, json.dumps(self.redacted(), indent=1, default=str))


def _override_target(data: dict, dotted: str) -> tuple[dict, str, str]:
    """(mapping, leaf key, parent path) that ``--set dotted=...`` writes; unknown keys are refused.

    Inside ``spark.conf`` the rest of the key is one Spark property (``spark.conf.spark.sql.x``);
    inside the other open maps missing levels are created.
    """
    if dotted.startswith("spark.conf."):
        return data.setdefault("spark", {}).setdefault("conf", {}), dotted[len("spark.conf.") :], "spark.conf"
    node: dict = data
    *parents, leaf = dotted.split(".")
    for i, part in enumerate(parents):
        here = ".".join(parents[:i])
        if not isinstance(node.get(part), dict):
            if here not in OPEN_SECTIONS and ".".join(parents[: i + 1]) not in OPEN_SECTIONS:
                raise ConfigError(f"override: unknown key '{dotted}' (no section '{'.'.join(parents[: i + 1])}')")
            node[part] = {}
        node = node[part]
    parent = ".".join(parents)
    if leaf not in node and not any(parent == s or parent.startswith(s + ".") for s in OPEN_SECTIONS):
        known = ", ".join(sorted(node)) or "(none)"
        raise ConfigError(f"override: unknown key '{dotted}' (known here: {known})")
    return node, leaf, parent


def resolve_conf_path(path: str | os.PathLike | None) -> Path:
    if path is None:
        path = os.environ.get("CUSTSEG_CONF") or DEFAULT_CONF_DIR / DEFAULT_CONF
    p = Path(path)
    if not p.exists() and not p.is_absolute() and (DEFAULT_CONF_DIR / p).exists():
        p = DEFAULT_CONF_DIR / p
    return p


def load_config(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load ``path`` (default: $CUSTSEG_CONF or conf/local.yaml) with its ``extends`` chain."""
    env = os.environ if env is None else env
    file = resolve_conf_path(path)
    chain = _chain(file)
    base_file, data = chain[0]
    origin: dict[str, Path] = {}
    data = copy.deepcopy(data)
    for over_file, over in chain[1:]:
        _merge(data, over, origin, over_file, "", strict=True)
    data = _interpolate(data, env, "", origin, base_file)
    conf = Config(data, file.resolve(), {k: Path(v) for k, v in origin.items()})
    validate(conf)
    return conf


# --- semantic checks ---------------------------------------------------------------

_VALIDATORS: list = []


def validator(fn):
    """Register a check ``fn(conf)`` that raises ``ConfigError`` (via ``conf.error``)."""
    _VALIDATORS.append(fn)
    return fn


def validate(conf: Config) -> None:
    for fn in _VALIDATORS:
        fn(conf)


@validator
def _check_maintenance(conf: Config) -> None:
    """The VACUUM retention floor, checked before any job starts (not just the maintain job)."""
    from custseg.stages.maintain import MaintenanceSettings

    MaintenanceSettings.from_config(conf)


@validator
def _check_core(conf: Config) -> None:
    engine = conf.get_path("storage.engine", "auto")
    if engine not in ("auto", "delta-rs", "spark-delta"):
        raise conf.error("storage.engine", f"must be one of auto, delta-rs, spark-delta; got {engine!r}")
    bins = conf.get_path("rfm.bins", 5)
    if not isinstance(bins, int) or not 2 <= bins <= 10:
        raise conf.error("rfm.bins", f"must be an integer from 2 to 10; got {bins!r}")
    window = conf.get_path("rfm.window_days", 365)
    if not isinstance(window, int) or window <= 0:
        raise conf.error("rfm.window_days", f"must be a positive integer; got {window!r}")
    for i, rule in enumerate(conf.get_path("rfm.segments", [])):
        key = f"rfm.segments[{i}]"
        if not isinstance(rule, dict) or set(rule) != {"name", "r", "f"}:
            raise conf.error("rfm.segments", f"entry {key} must have exactly name, r, f; got {rule!r}")
        for axis in ("r", "f"):
            lo_hi = rule[axis]
            if not (
                isinstance(lo_hi, list)
                and len(lo_hi) == 2
                and all(isinstance(v, int) for v in lo_hi)
                and 1 <= lo_hi[0] <= lo_hi[1] <= bins
            ):
                raise conf.error(
                    "rfm.segments", f"entry {key}.{axis} must be [low, high] within 1..{bins}; got {lo_hi!r}"
                )
    delivery = conf.get_path("pii.key_delivery", "closure")
    if delivery not in ("closure", "worker_env"):
        raise conf.error("pii.key_delivery", f"must be 'closure' or 'worker_env'; got {delivery!r}")
    min_len = conf.get_path("pii.salt_min_length", 32)
    if not isinstance(min_len, int) or isinstance(min_len, bool) or min_len < 16:
        raise conf.error("pii.salt_min_length", f"must be an integer of at least 16 (bytes); got {min_len!r}")
    salt_env = conf.get_path("pii.salt_env", "CUSTSEG_PII_SALT")
    if not isinstance(salt_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", salt_env):
        raise conf.error("pii.salt_env", f"must name an environment variable; got {salt_env!r}")
    max_price = conf.get_path("ingest.bounds.max_price", 1e6)
    max_qty = conf.get_path("ingest.bounds.max_qty", 100000)
    if not isinstance(max_price, (int, float)) or isinstance(max_price, bool) or not 0 < max_price < 1e10:
        raise conf.error(
            "ingest.bounds.max_price", f"must be a number above 0 and below 10^10 (decimal(12,2)); got {max_price!r}"
        )
    if not isinstance(max_qty, int) or isinstance(max_qty, bool) or not 0 < max_qty < 2**31:
        raise conf.error("ingest.bounds.max_qty", f"must be a positive integer (int); got {max_qty!r}")
    if max_price * max_qty >= 1e12:
        raise conf.error(
            "ingest.bounds.max_qty",
            f"x ingest.bounds.max_price must stay below 10^12 (line totals are decimal(14,2)); got {max_qty} x {max_price}",
        )
    policies = ("quarantine", "fail", "accept")
    if conf.get_path("ingest.on_unknown_fields", "quarantine") not in policies:
        raise conf.error("ingest.on_unknown_fields", f"must be one of {', '.join(policies)}")
    for name, settings in (conf.get_path("sources", {}) or {}).items():
        if not isinstance(settings, Mapping):
            raise conf.error(f"sources.{name}", f"must be a mapping of source settings; got {settings!r}")
        unknown = sorted(set(settings) - set(SOURCE_SETTINGS))
        if unknown:
            raise conf.error(f"sources.{name}", f"has unknown settings {unknown} ({', '.join(SOURCE_SETTINGS)})")
        policy = settings.get("on_unknown_fields", "quarantine")
        if policy not in policies:
            raise conf.error(
                f"sources.{name}.on_unknown_fields", f"must be one of {', '.join(policies)}; got {policy!r}"
            )
        for switch in ("require_success_marker", "csv_require_final_newline"):
            if not isinstance(settings.get(switch, False), bool):
                raise conf.error(f"sources.{name}.{switch}", "must be true or false")
    method = conf.get_path("rfm.binning", "quantile")
    if method not in ("quantile", "fixed"):
        raise conf.error("rfm.binning", f"must be 'quantile' or 'fixed'; got {method!r}")
    zero_price = conf.get_path("conform.zero_price_lines", "not_purchases")
    if zero_price not in ("not_purchases", "purchases"):
        raise conf.error("conform.zero_price_lines", f"must be 'not_purchases' or 'purchases'; got {zero_price!r}")


@validator
def _check_tracking(conf: Config) -> None:
    """MLflow tracking settings (custseg.tracking), checked even while tracking is off."""
    if not str(conf.get_path("tracking.experiment", "custseg")).strip():
        raise conf.error("tracking.experiment", "must name an MLflow experiment (e.g. custseg, /Shared/custseg)")
    retries = conf.get_path("tracking.http_max_retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        raise conf.error("tracking.http_max_retries", f"must be an integer from 0 to 10; got {retries!r}")
    timeout = conf.get_path("tracking.http_timeout_seconds", 30)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout <= 0:
        raise conf.error("tracking.http_timeout_seconds", f"must be a positive integer; got {timeout!r}")


def side_file(conf: Config, key: str) -> Path | None:
    """A file a config key names (campaigns, triggers): relative to the config file's folder,
    else the packaged conf/; None if the key is empty."""
    name = conf.get_path(key, "")
    if not name:
        return None
    p = Path(name)
    if p.is_absolute():
        return p
    beside = Path(conf.file).parent / p
    return beside if beside.exists() else DEFAULT_CONF_DIR / p
