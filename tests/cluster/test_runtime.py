"""The local Ray that a search starts listens on loopback only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

# Runs in a fresh interpreter: the loopback switch only works before ray is first imported.
PROBE = """
import json, psutil
from cluster.runtime import ray_session, use_loopback_only
use_loopback_only()
import ray
with ray_session(address=None):
    ours = [p for p in psutil.Process().children(recursive=True)
            if any(n in " ".join(p.cmdline()) for n in ("raylet", "gcs_server"))]
    listening = sorted({c.laddr.ip for p in ours for c in p.net_connections("tcp")
                        if c.status == psutil.CONN_LISTEN})
    print(json.dumps({"node": ray.nodes()[0]["NodeManagerAddress"], "listening": listening}))
"""


def test_local_ray_listens_on_loopback_only():
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    assert seen["node"] == "127.0.0.1"
    assert seen["listening"], "found no listening Ray server to check"
    assert all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in seen["listening"])
