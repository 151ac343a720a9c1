"""``[sink]``: the SMTP sink's listener, accepted addresses, spool and limits."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, model_validator

from checks.errors import ConfigError
from collectors.config import ListenAddress, Section


class SinkConfig(Section):
    #: ``host:port`` or ``[v6]:port``, checked on load
    listen: ListenAddress = "127.0.0.1:2525"
    #: loopback-only by default, so accepting "localhost" lets a newcomer try it safely
    accept_domains: list[str] = Field(default_factory=lambda: ["localhost"])
    accept_addresses: list[str] = Field(default_factory=list)
    spool: str = "var/spool"
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(100, ge=1)
    #: PEM files, both or neither (checked on load); read when the sink starts
    #: (:meth:`check_tls_files`)
    tls_cert: str = ""
    tls_key: str = ""

    # -- bounds under load (docs/sink.md, "Limits"; collectors/sink/limits.py) ------------
    #: open sessions at most; 0 = from the descriptor soft limit (RLIMIT_NOFILE):
    #: min(4096, max(16, (soft - 256) // 2)). Beyond it: 421 4.7.0 and close.
    max_connections: int = Field(0, ge=0)
    #: open sessions per client IPv4 address or IPv6 /64 at most; 0 = no per-client cap
    max_connections_per_client: int = Field(20, ge=0)
    #: seconds a session may stay silent: before its first command and between commands
    idle_timeout: float = Field(60.0, gt=0, le=3600)
    #: seconds the whole DATA phase may take, from 354 to the final dot
    data_timeout: float = Field(120.0, gt=0, le=3600)
    #: listen(2) backlog of the listening socket (the kernel caps it at net.core.somaxconn)
    listen_backlog: int = Field(4096, ge=1, le=65535)
    #: message bytes held by all sessions in DATA at most; a DATA beyond it gets 451 4.3.2
    #: (at least max_message_bytes)
    max_data_bytes_in_flight: int = Field(128 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _tls_pair(self) -> SinkConfig:
        """Both TLS files or neither (the message starts with the key at fault). The files
        themselves are read by :meth:`check_tls_files` when the sink starts: the other
        commands share the config file and need not read the private key."""
        if self.tls_cert and not self.tls_key:
            raise ValueError("tls_key: required when tls_cert is set (set both together)")
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_cert: required when tls_key is set (set both together)")
        return self

    def check_tls_files(self) -> None:
        """Raise :class:`ConfigError` naming ``sink.tls_cert`` or ``sink.tls_key`` when a
        TLS file is missing, not a regular file or unreadable, or when the two are not a PEM
        certificate and its (unencrypted) private key. Nothing to check when TLS is off."""
        if not (self.tls_cert or self.tls_key):
            return
        for key, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            problem = _unreadable(Path(path)) if path else "required with the other TLS file"
            if problem:
                raise ConfigError(f"sink.{key}: {path}: {problem}")
        try:
            # an empty password: an encrypted key fails here instead of prompting on a tty
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                self.tls_cert, self.tls_key, password=lambda: b""
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc.__class__.__name__
            raise ConfigError(
                f"sink.tls_cert: {self.tls_cert} with sink.tls_key {self.tls_key}: not a PEM "
                f"certificate and its unencrypted private key ({reason})"
            ) from None


def _unreadable(path: Path) -> str:
    """Why ``path`` cannot be read as a file; "" when it can."""
    try:
        if not path.is_file():
            return "no such file" if not path.exists() else "not a regular file"
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    return ""
