"""Reading a Redis broker URL into client settings, without connecting.

Supported forms::

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                       the same over TLS
    unix:///path/to/redis.sock[?db=N&password=...]

Options fluxqueue understands (everything else is refused, so a typo is not silently
ignored): see :data:`OPTIONS`. ``visibility_timeout`` is read by the base class. The
settings end up as keyword arguments of redis-py's clients (``client_kwargs``), so each
option means exactly what redis-py documents for it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from fluxqueue._url import float_option, mask_url
from fluxqueue.errors import ConfigurationError

__all__ = ["OPTIONS", "RedisConfig", "parse_url"]

log = logging.getLogger("fluxqueue.redis")

#: Option name -> what it does; shown when an unknown option is refused.
OPTIONS: dict[str, str] = {
    "prefix": "namespace of every key (default fq); also the cluster hash tag",
    "cluster": "1 to talk to a Redis Cluster through this node",
    "db": "database number (unix:// sockets; redis:// takes it from the path too)",
    "username": "ACL user name",
    "password": "password (prefer the user:password@ part of the URL)",
    "socket_timeout": "seconds to wait for a reply before giving up (default 10)",
    "socket_connect_timeout": "seconds to wait for a connection (default 5)",
    "max_connections": "connections per event loop; more callers wait (default 100)",
    "health_check_interval": "seconds after which an idle connection is checked first",
    "block_timeout": "longest single blocking wait of an idle fetch (default 5)",
    "client_name": "CLIENT SETNAME shown in CLIENT LIST",
    "ssl_cert_reqs": "rediss: none, optional or required (default required)",
    "ssl_ca_certs": "rediss: CA bundle file",
    "ssl_certfile": "rediss: client certificate file",
    "ssl_keyfile": "rediss: client key file",
    "ssl_check_hostname": "rediss: 0 to skip the host name check",
}

#: Options that earlier versions understood and that no longer do anything: accepted, so
#: that a deployed URL keeps working, with a warning saying why they are ignored.
RETIRED: dict[str, str] = {
    "busy_poll": "fluxqueue talks to Redis through redis-py now, which does not poll "
    "for replies (docs/benchmarks.md, round 8)",
}

_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(slots=True)
class RedisConfig:
    """Everything needed to build clients; ``where`` names the server in error messages."""

    prefix: str = "fq"
    cluster: bool = False
    block_timeout: float = 5.0
    where: str = "127.0.0.1:6379"
    #: Keyword arguments of redis-py's ``Redis`` and ``RedisCluster`` clients.
    client_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str, options: dict[str, str]) -> RedisConfig:
    """Build a :class:`RedisConfig` from ``url``; pops the options it uses from ``options``."""
    masked = mask_url(url)
    parts = urlsplit(url)
    config = RedisConfig(
        prefix=_prefix(options, masked),
        cluster=_flag(options, "cluster", masked),
        block_timeout=float_option(options, "block_timeout", 5.0, url),
    )
    kwargs: dict[str, Any] = {
        "socket_timeout": float_option(options, "socket_timeout", 10.0, url),
        "socket_connect_timeout": float_option(options, "socket_connect_timeout", 5.0, url),
    }
    kwargs.update(_credentials(parts, options))
    config.where = _address(parts, options, masked, config.cluster, kwargs)
    kwargs.update(_pool_options(options, masked, url))
    _retire(options, masked)
    if options:
        known = ", ".join([*sorted(OPTIONS), "visibility_timeout"])
        raise ConfigurationError(
            f"broker URL {masked!r}: unknown option(s) {', '.join(sorted(options))} "
            f"(the Redis broker understands {known})"
        )
    config.client_kwargs = kwargs
    return config


def _prefix(options: dict[str, str], masked: str) -> str:
    prefix = options.pop("prefix", "fq")
    if not _PREFIX.match(prefix):
        raise ConfigurationError(
            f"broker URL {masked!r}: prefix must be letters, digits, '_', '.', ':' or '-' "
            f"(no braces: fluxqueue adds the hash tag itself), got {prefix!r}"
        )
    return prefix


def _credentials(parts: SplitResult, options: dict[str, str]) -> dict[str, str]:
    """``username`` and ``password`` from the URL, the query string winning."""
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and username and ":" not in parts.netloc.split("@")[0]:
        password, username = username, None  # "redis://secret@host": a bare password
    username = options.pop("username", username) or None
    password = options.pop("password", password) or None
    found = {}
    if username:
        found["username"] = username
    if password:
        found["password"] = password
    return found


def _address(
    parts: SplitResult,
    options: dict[str, str],
    masked: str,
    cluster: bool,
    kwargs: dict[str, Any],
) -> str:
    """Put where to connect (socket path or host and port, db, TLS) in ``kwargs``;
    returns how error messages name the server."""
    scheme = parts.scheme.lower()
    db_text = options.pop("db", None)
    if scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"broker URL {masked!r}: unix:// needs a socket path")
        if cluster:
            raise ConfigurationError(f"broker URL {masked!r}: cluster needs a host:port URL")
        kwargs["unix_socket_path"] = unquote(parts.path)
        where = f"unix socket {unquote(parts.path)}"
    elif scheme in ("redis", "rediss"):
        try:
            port = parts.port or 6379
        except ValueError:
            raise ConfigurationError(f"broker URL {masked!r}: the port is not a number") from None
        host = parts.hostname or "127.0.0.1"
        kwargs["host"], kwargs["port"] = host, port
        where = f"{host}:{port}"
        path_db = parts.path.strip("/")
        if path_db and db_text is None:
            db_text = path_db
        if scheme == "rediss":
            kwargs.update(_ssl_options(options, masked))
    else:
        raise ConfigurationError(f"broker URL {masked!r}: the Redis broker does not serve {scheme}")
    if db_text is not None:
        kwargs["db"] = _database(db_text, masked, cluster)
    return where


def _database(text: str, masked: str, cluster: bool) -> int:
    if not text.isdigit():
        raise ConfigurationError(
            f"broker URL {masked!r}: the database must be a number, got {text!r}"
        )
    if cluster and int(text) != 0:
        raise ConfigurationError(f"broker URL {masked!r}: Redis Cluster only has db 0")
    return int(text)


def _pool_options(options: dict[str, str], masked: str, url: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    raw = options.pop("max_connections", None)
    if raw is not None:
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigurationError(
                f"broker URL {masked!r}: max_connections must be an integer >= 1, got {raw!r}"
            )
        found["max_connections"] = int(raw)
    if "health_check_interval" in options:
        found["health_check_interval"] = float_option(options, "health_check_interval", 0.0, url)
    name = options.pop("client_name", None)
    if name:
        found["client_name"] = name
    return found


def _retire(options: dict[str, str], masked: str) -> None:
    """Drop the retired options (:data:`RETIRED`), warning about each."""
    for name, why in RETIRED.items():
        if options.pop(name, None) is not None:
            log.warning("broker URL %r: option %s is ignored: %s", masked, name, why)


def _flag(options: dict[str, str], name: str, masked: str) -> bool:
    raw = options.pop(name, None)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigurationError(f"broker URL {masked!r}: {name} must be 1 or 0, got {raw!r}")


def _ssl_options(options: dict[str, str], masked: str) -> dict[str, Any]:
    found: dict[str, Any] = {"ssl": True}
    reqs = options.pop("ssl_cert_reqs", None)
    if reqs is not None:
        if reqs.lower() not in ("none", "optional", "required"):
            raise ConfigurationError(
                f"broker URL {masked!r}: ssl_cert_reqs must be none, optional or required, "
                f"got {reqs!r}"
            )
        found["ssl_cert_reqs"] = reqs.lower()
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        value = options.pop(name, None)
        if value:
            found[name] = value
    if "ssl_check_hostname" in options:
        found["ssl_check_hostname"] = _flag(options, "ssl_check_hostname", masked)
    elif found.get("ssl_cert_reqs") == "none":
        found["ssl_check_hostname"] = False  # nothing to check the name against
    return found
