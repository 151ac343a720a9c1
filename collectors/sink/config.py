"""``[sink]``: the SMTP sink's listener, accepted addresses, spool and limits."""

from __future__ import annotations

from pydantic import Field

from collectors.config import Section


class SinkConfig(Section):
    listen: str = "127.0.0.1:2525"
    #: loopback-only by default, so accepting "localhost" lets a newcomer try it safely
    accept_domains: list[str] = Field(default_factory=lambda: ["localhost"])
    accept_addresses: list[str] = Field(default_factory=list)
    spool: str = "var/spool"
    max_message_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_recipients: int = Field(100, ge=1)
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
