"""Reading a Redis broker URL into client settings, without connecting.

Supported forms::

    redis://[[user]:password@]host[:port][/db][?option=value&...]
    rediss://...                       the same over TLS
    unix:///path/to/redis.sock[?db=N&password=...]

Options fluxqueue understands (everything else is refused, so a typo is not silently
ignored): see :data:`OPTIONS`. ``visibility_timeout`` is read by the base class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from fluxqueue._url import float_option, mask_url
from fluxqueue.errors import ConfigurationError

__all__ = ["OPTIONS", "RedisConfig", "parse_url"]

#: Default of the ``busy_poll`` option, in microseconds: a reply from Redis on the same
#: machine arrives within about 20 (docs/benchmarks.md, "Round 7: busy polling").
DEFAULT_BUSY_POLL_US = 50

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
    "busy_poll": "microseconds a synchronous enqueue polls for the reply before it sleeps "
    f"(default {DEFAULT_BUSY_POLL_US}; 0 never)",
    "client_name": "CLIENT SETNAME shown in CLIENT LIST",
    "ssl_cert_reqs": "rediss: none, optional or required (default required)",
    "ssl_ca_certs": "rediss: CA bundle file",
    "ssl_certfile": "rediss: client certificate file",
    "ssl_keyfile": "rediss: client key file",
    "ssl_check_hostname": "rediss: 0 to skip the host name check",
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
    #: Seconds a blocking connection polls for a reply before it sleeps (``busy_poll``).
    busy_poll: float = DEFAULT_BUSY_POLL_US / 1e6
    where: str = "127.0.0.1:6379"
    #: Connection settings: read by ``wire.Endpoint``, or passed to redis-py's
    #: ``RedisCluster`` as keyword arguments.
    client_kwargs: dict[str, Any] = field(default_factory=dict)


def parse_url(url: str, options: dict[str, str]) -> RedisConfig:
    """Build a :class:`RedisConfig` from ``url``; pops the options it uses from ``options``."""
    masked = mask_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    config = RedisConfig()
    kwargs: dict[str, Any] = {
        "socket_timeout": float_option(options, "socket_timeout", 10.0, url),
        "socket_connect_timeout": float_option(options, "socket_connect_timeout", 5.0, url),
    }
    config.block_timeout = float_option(options, "block_timeout", 5.0, url)
    config.cluster = _flag(options, "cluster", masked)
    config.busy_poll = _busy_poll(options, masked)
    prefix = options.pop("prefix", "fq")
    if not _PREFIX.match(prefix):
        raise ConfigurationError(
            f"broker URL {masked!r}: prefix must be letters, digits, '_', '.', ':' or '-' "
            f"(no braces: fluxqueue adds the hash tag itself), got {prefix!r}"
        )
    config.prefix = prefix

    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is None and username and ":" not in parts.netloc.split("@")[0]:
        password, username = username, None  # "redis://secret@host": a bare password
    username = options.pop("username", username) or None
    password = options.pop("password", password) or None
    if username:
        kwargs["username"] = username
    if password:
        kwargs["password"] = password

    db_text = options.pop("db", None)
    if scheme == "unix":
        if not parts.path:
            raise ConfigurationError(f"broker URL {masked!r}: unix:// needs a socket path")
        if config.cluster:
            raise ConfigurationError(f"broker URL {masked!r}: cluster needs a host:port URL")
        kwargs["unix_socket_path"] = unquote(parts.path)
        config.where = f"unix socket {unquote(parts.path)}"
    elif scheme in ("redis", "rediss"):
        try:
            port = parts.port or 6379
        except ValueError:
            raise ConfigurationError(f"broker URL {masked!r}: the port is not a number") from None
        host = parts.hostname or "127.0.0.1"
        kwargs["host"], kwargs["port"] = host, port
        config.where = f"{host}:{port}"
        path_db = parts.path.strip("/")
        if path_db and db_text is None:
            db_text = path_db
        if scheme == "rediss":
            kwargs.update(_ssl_options(options, masked))
    else:
        raise ConfigurationError(f"broker URL {masked!r}: the Redis broker does not serve {scheme}")
    if db_text is not None:
        if not db_text.isdigit():
            raise ConfigurationError(
                f"broker URL {masked!r}: the database must be a number, got {db_text!r}"
            )
        kwargs["db"] = int(db_text)
        if config.cluster and kwargs["db"] != 0:
            raise ConfigurationError(f"broker URL {masked!r}: Redis Cluster only has db 0")

    raw = options.pop("max_connections", None)
    if raw is not None:
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigurationError(
                f"broker URL {masked!r}: max_connections must be an integer >= 1, got {raw!r}"
            )
        kwargs["max_connections"] = int(raw)
    if "health_check_interval" in options:
        kwargs["health_check_interval"] = float_option(options, "health_check_interval", 0.0, url)
    name = options.pop("client_name", None)
    if name:
        kwargs["client_name"] = name

    if options:
        known = ", ".join([*sorted(OPTIONS), "visibility_timeout"])
        raise ConfigurationError(
            f"broker URL {masked!r}: unknown option(s) {', '.join(sorted(options))} "
            f"(the Redis broker understands {known})"
        )
    config.client_kwargs = kwargs
    return config


def _flag(options: dict[str, str], name: str, masked: str) -> bool:
    raw = options.pop(name, None)
    if raw is None:
        return False
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigurationError(f"broker URL {masked!r}: {name} must be 1 or 0, got {raw!r}")


def _busy_poll(options: dict[str, str], masked: str) -> float:
    """The ``busy_poll`` option, given in microseconds, in seconds."""
    raw = options.pop("busy_poll", None)
    if raw is None:
        return DEFAULT_BUSY_POLL_US / 1e6
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1_000_000:
        raise ConfigurationError(
            f"broker URL {masked!r}: busy_poll must be a number of microseconds from 0 "
            f"(never poll) to 1000000, got {raw!r}"
        )
    return value / 1e6


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
    return found
