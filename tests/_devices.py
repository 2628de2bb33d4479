"""Run a script in a fresh Python process that sees two host (CPU) devices.

The device count of a JAX process is fixed when JAX starts (``XLA_FLAGS``), so the tests of
sharded paths run their script in a child process."""

import os
import subprocess
import sys

TWO_HOST_DEVICES = dict(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")


def run_on_two_host_devices(script: str, *args: str, expect: str, timeout: int = 600) -> str:
    """Run ``python -c script *args`` with two forced host devices; assert that it exits 0
    and prints ``expect``; return its standard output."""
    env = dict(os.environ, **TWO_HOST_DEVICES)
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-4000:]
    assert expect in out.stdout, out.stdout[-2000:]
    return out.stdout
