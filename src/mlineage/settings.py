"""Configuration: CLI flags override ``MLINEAGE_*`` environment variables, which override
defaults. This module is the one reader of ``MLINEAGE_*`` (but ``MLINEAGE_FAILPOINTS``, the
tests' crash points): :class:`Settings` for a home, and the functions below for the
settings of one part (the Kafka clients, DuckDB's memory, progress, the tracker instance)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlineage import arns
from mlineage.errors import ConfigurationError

DEFAULT_ACCOUNT_ID = "000000000000"
DEFAULT_REGION = "us-east-1"
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def kafka_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``MLINEAGE_KAFKA_<NAME>`` as ``<name>``: the Kafka log's own options and its
    kafka-python client settings (``mlineage.log.kafka`` checks them)."""
    return {
        key.removeprefix("MLINEAGE_KAFKA_").lower(): value
        for key, value in _env(environ).items()
        if key.startswith("MLINEAGE_KAFKA_")
    }


def duckdb_memory(environ: Mapping[str, str] | None = None) -> str | None:
    """``MLINEAGE_DUCKDB_MEMORY``: DuckDB's memory limit where the projection is written."""
    return _env(environ).get("MLINEAGE_DUCKDB_MEMORY") or None


def instance_id(environ: Mapping[str, str] | None = None) -> str | None:
    """``MLINEAGE_INSTANCE_ID``: this tracker instance's stable name in its Kafka group."""
    return _env(environ).get("MLINEAGE_INSTANCE_ID") or None


def progress_after(environ: Mapping[str, str] | None = None) -> float:
    """``MLINEAGE_PROGRESS_AFTER``: seconds a catch-up or replay runs before it shows
    progress (default 1; 0: from the start)."""
    after = _env(environ).get("MLINEAGE_PROGRESS_AFTER", "1")
    try:
        return max(0.0, float(after))
    except ValueError:
        raise ConfigurationError(
            f"MLINEAGE_PROGRESS_AFTER={after!r} is not a number of seconds"
        ) from None


def sqlite_url(path: Path) -> str:
    """``sqlite:///`` + path: relative paths stay relative, absolute ones get a fourth slash."""
    return f"sqlite:///{path}"


@dataclass(frozen=True)
class Settings:
    """Where the log and the projection live, and what to stamp on events at publish."""

    home: Path
    log_url: str
    db_path: Path
    account_id: str
    region: str
    kafka_options: Mapping[str, str] = field(default_factory=dict)
    spool_dir: Path = Path(".mlineage/spool")

    @classmethod
    def load(
        cls,
        *,
        home: str | Path | None = None,
        log_url: str | None = None,
        db_path: str | Path | None = None,
        account_id: str | None = None,
        region: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Resolve settings: explicit arguments (CLI flags) > environment > defaults."""
        env = os.environ if environ is None else environ
        home_path = Path(home or env.get("MLINEAGE_HOME") or ".mlineage")
        url = log_url or env.get("MLINEAGE_LOG") or sqlite_url(home_path / "events.sqlite")
        db = Path(db_path or env.get("MLINEAGE_DB") or home_path / "lineage.duckdb")
        account = account_id or env.get("MLINEAGE_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID
        reg = region or env.get("MLINEAGE_REGION") or DEFAULT_REGION
        if not arns.is_account(account):
            raise ConfigurationError(
                f"MLINEAGE_ACCOUNT_ID must be 12 digits, got {account!r}: "
                "set it to your AWS-style account id, e.g. 123456789012"
            )
        if not _REGION_RE.match(reg):
            raise ConfigurationError(f"MLINEAGE_REGION must look like 'us-east-1', got {reg!r}")
        if not (url.startswith("sqlite://") or url.startswith("kafka://")):
            raise ConfigurationError(
                "MLINEAGE_LOG must be sqlite:///path/events.sqlite or kafka://host:port, "
                f"got {url!r}"
            )
        return cls(
            home=home_path,
            log_url=url,
            db_path=db,
            account_id=account,
            region=reg,
            kafka_options=kafka_options(env),
            spool_dir=Path(env.get("MLINEAGE_SPOOL_DIR") or home_path / "spool"),
        )

    @property
    def log_file(self) -> Path | None:
        """The embedded log's file, absolute (None with Kafka)."""
        if not self.log_url.startswith("sqlite:///"):
            return None
        return Path(self.log_url.removeprefix("sqlite:///")).absolute()

    def log_url_note(self) -> str | None:
        """A word when ``sqlite:///x/...`` (relative: ``./x/...``) most likely meant the
        absolute ``/x/...``: ``./x`` does not exist and ``/x`` does."""
        rest = self.log_url.removeprefix("sqlite:///")
        if not self.log_url.startswith("sqlite:///") or rest.startswith("/"):
            return None
        first = Path(rest).parts[0] if Path(rest).parts else ""
        if first and not Path(first).exists() and (Path("/") / first).exists():
            return (
                f"{self.log_url} is the file {Path(rest).absolute()} (relative to here); "
                f"for /{rest} write sqlite:////{rest}"
            )
        return None

    def nothing_published(self) -> str | None:
        """Why there is nothing to read here (no embedded log and no projection), with what to
        do; None when there is something. Reads check it first, so a read in the wrong
        directory says so instead of creating an empty home."""
        log_file = self.log_file
        if log_file is None or log_file.exists() or self.db_path.exists():
            return None
        return (
            f"nothing published here yet: no log at {log_file} and no projection at "
            f"{self.db_path.absolute()}. Publish events (`mlineage publish`), run "
            "`mlineage demo`, or point --home / MLINEAGE_HOME at the home you meant"
        )
