"""Starting or joining Ray.

By default a search starts a private Ray on this machine, bound to the loopback address with the
dashboard off, so nothing listens on a public interface unless the user asks for it.

Ray 2.60 resolves a node address of 127.0.0.1 to the machine's network address and listens
there; only its single-machine mode (the one it uses on macOS and Windows, switched on by an
environment variable that Ray reads when it is first imported) keeps every server on loopback.
So `use_loopback_only()` must run before anything imports ray.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING

from search_spaces.errors import ArchsearchError

if TYPE_CHECKING:
    from collections.abc import Iterator

logger = logging.getLogger(__name__)

# Ray's switch for its single-machine mode; "0" keeps every Ray server on the loopback address.
SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def use_loopback_only() -> None:
    """Make the next local Ray listen on 127.0.0.1 only; call before ray is first imported."""
    if "ray" in sys.modules and os.environ.get(SINGLE_MACHINE_ENV) != "0":
        logger.warning(
            "ray was imported before archsearch could ask it to stay on loopback; the local "
            "Ray may listen on this machine's network address"
        )
    os.environ.setdefault(SINGLE_MACHINE_ENV, "0")


class ClusterError(ArchsearchError, ConnectionError):
    """Ray could not be started or reached."""


@contextmanager
def ray_session(*, address: str | None, dashboard: bool = False) -> Iterator[bool]:
    """Use an already running Ray in this process, or start/join one and shut it down after.

    Yields True when this call started the connection (and will close it).
    """
    import ray

    if ray.is_initialized():
        yield False
        return

    # Ray's anonymous usage reporting would try the network, which these machines lack.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is not None:
        check_reachable(address)
    try:
        if address is None:
            ray.init(
                address="local",
                include_dashboard=dashboard,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = address or "a local Ray"
        raise ClusterError(
            f"cluster.address: cannot start or reach {where}: {str(error).splitlines()[0]}; "
            "check the address, or leave it out to run on this machine"
        ) from None

    logger.info("Ray started with resources %s", ray.cluster_resources())
    try:
        yield True
    finally:
        ray.shutdown()


def check_reachable(address: str, *, timeout: float = 5.0) -> None:
    """Refuse at once an address nothing listens on; Ray itself would retry for minutes.

    `auto` and other addresses without a port are left to Ray, which fails fast on them.
    """
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ClusterError(
            f"cluster.address: cannot reach {address} ({reason}); start the cluster "
            "(ray start --head) or fix the address, e.g. auto or ray://HOST:10001"
        ) from None


def available_cpus() -> float:
    """CPUs of the connected Ray cluster (all nodes)."""
    import ray

    return float(ray.cluster_resources().get("CPU", 1.0))
