"""A job's shared resources: the HTTP connection pool, per-registry clients, the blob store."""
from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Awaitable, Callable, Optional, TypeVar

from fastsync.errors import FastsyncError
from fastsync.options import GlobalOptions, TransportOptions

if TYPE_CHECKING:
    import aiohttp

    from fastsync.store.blobs import Store
    from fastsync.registry.client import RegistryClient
    from fastsync.registry.pings import PingMemo
    from fastsync.registry.stats import TrafficStats

T = TypeVar("T")


class Session:
    """Owns what outlives one image: connections, authenticated clients, the store. Use `async with`."""

    def __init__(self, options: Optional[GlobalOptions] = None, store: Optional["Store"] = None,
                 traffic: Optional["TrafficStats"] = None) -> None:
        self.options = options or GlobalOptions()
        self.store = store
        self.traffic = traffic            # per-host figures, counted by trace hooks when given
        self._http: Optional["aiohttp.ClientSession"] = None
        self._clients: dict[tuple[str, TransportOptions], "RegistryClient"] = {}
        self._pings: Optional["PingMemo"] = None

    async def __aenter__(self) -> "Session":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def http(self) -> "aiohttp.ClientSession":
        if self._http is None:
            from fastsync.registry.tls import import_aiohttp

            aiohttp = import_aiohttp()

            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self.options.connections_per_host,
                                             ttl_dns_cache=300)
            net = self.options.network
            # sock_read is an idle timeout: it restarts with every piece of data that arrives
            timeout = aiohttp.ClientTimeout(total=None, connect=None,
                                            sock_connect=net.connect_timeout, sock_read=net.read_idle_timeout)
            traces = [self.traffic.trace_config()] if self.traffic is not None else None
            self._http = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                               headers={"User-Agent": self.options.user_agent},
                                               trace_configs=traces)
        return self._http

    async def open_http(self) -> None:
        """Make the connection pool, aiohttp imported in a thread (the loop stays free meanwhile)."""
        if self._http is None:
            from fastsync.registry.tls import import_aiohttp

            await asyncio.to_thread(import_aiohttp)
        self.http

    def registry(self, host: str, opts: TransportOptions) -> "RegistryClient":
        """The client for `host` with these options (one per host and option set, reused across images)."""
        from fastsync.registry.client import RegistryClient

        key = (host, opts)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = RegistryClient(self.http, host, opts, self.options.network,
                                                         self.ping_memo(), self.traffic)
        return client

    def ping_memo(self) -> "PingMemo":
        """The registries' ping answers: this session's, and with a cache directory recent runs'."""
        if self._pings is None:
            from fastsync.registry.pings import PingMemo

            root = getattr(self.store, "root", None)
            self._pings = PingMemo(os.path.join(root, "pings.json") if root else None)
        return self._pings

    def ping_early(self, host: str, opts: TransportOptions) -> None:
        """Send `host`'s ping now, without waiting for the HTTP client (aiohttp) to be imported: its
        first client takes the answer (see registry/bareping). Nothing is sent when this session or
        a recent run already knows the answer, or when there is no running loop."""
        from fastsync.registry.bareping import bare_ping
        from fastsync.registry.tls import ssl_context

        memo, ctx = self.ping_memo(), ssl_context(host.split("/")[0], opts)
        insecure = opts.tls_verify is False
        if self._http is not None or memo.get(host, ctx) is not None or memo.recall(host, insecure) is not None:
            return
        memo.early(host, ctx, asyncio.ensure_future(bare_ping(host, insecure, ctx, self.options.user_agent,
                                                               self.options.network, self.traffic)))

    def note_retry(self, exc: BaseException, host: Optional[str] = None) -> None:
        """Count a retry in the figures: against the registry whose answer failed (`exc.host`), else
        `host`."""
        where = getattr(exc, "host", None) or host
        if self.traffic is not None and where:
            self.traffic.retried(where)

    async def close(self) -> None:
        if self._pings is not None:
            await self._pings.drop_early()
        if self._http is not None:
            await self._http.close()
            self._http = None


def run(fn: Callable[[Session], Awaitable[T]], global_options: Optional[GlobalOptions] = None,
        store: Optional[Store] = None, traffic: Optional["TrafficStats"] = None) -> T:
    """Run `fn(session)` on a fresh event loop (uvloop when installed), honouring --command-timeout.
    With a `store`, its run lock is held throughout, so a concurrent `cache gc` never deletes blobs
    under the job; with `traffic`, the session's per-host figures are counted into it."""
    gopts = global_options or GlobalOptions()
    if store is not None:
        store.open_run()
        try:
            return _run(fn, gopts, store, traffic)
        finally:
            store.close_run()
    return _run(fn, gopts, store, traffic)


def _run(fn: Callable[[Session], Awaitable[T]], gopts: GlobalOptions, store: Optional[Store],
         traffic: Optional["TrafficStats"]) -> T:

    async def main() -> T:
        async with Session(gopts, store, traffic) as session:
            if gopts.command_timeout:
                try:
                    return await asyncio.wait_for(fn(session), gopts.command_timeout)
                except asyncio.TimeoutError:
                    raise FastsyncError(f"command timed out after {gopts.command_timeout:g}s") from None
            return await fn(session)

    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())
