"""Connecting to Ray: a local Ray started by the command, or an existing cluster via --address.

Kept in one place so every command attaches the same way and the same flags reach tests.
"""

from __future__ import annotations

import os

from .errors import RavisoError


def init_ray(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None,
             object_store_memory: int | None = None):
    """Start (or attach to) Ray once per process; return the `ray` module.

    ``address=None`` starts a private local Ray (dashboard off). ``address="auto"`` or
    ``ray://host:10001`` / ``host:6379`` attaches to a running cluster; a cluster that cannot be
    reached is a clear error, not a hang.
    """
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAVISO_RAY_ADDRESS") or None
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    if address:
        probe(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            # a private, single-user Ray that lives as long as this command: Ray 2.60's token
            # auth only adds a notice here (clusters keep it on: see cluster.yaml)
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")
            from .malloc import for_children

            for_children()      # the raylet and every worker inherit huge-page malloc
            # Ray starts workers at the raylet's niceness + 15 by default: CV trials and training
            # workers -- the actual work -- then yield the CPU to everything else on the machine,
            # Ray's own daemons and the Tune loop included. Run them at the
            # command's own priority (`nice -n 10 raviso cv` still makes them all nice).
            os.environ.setdefault("RAY_worker_niceness", "0")
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, object_store_memory=object_store_memory,
                     **kwargs)
    except ConnectionError as e:
        raise RavisoError(f"cannot reach the Ray cluster at {address}: {e}".splitlines()[0]) from None
    except ValueError as e:  # ray raises ValueError for malformed addresses
        raise RavisoError(f"bad Ray address {address!r}: {e}".splitlines()[0]) from None
    return ray


def probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast when a cluster address does not answer: `ray.init` retries the GCS for minutes.

    ``auto`` is left to Ray (it reads the local session file and fails at once when there is none).
    """
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise RavisoError(f"bad Ray address {address!r} (expected host:port, ray://host:port or auto)")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise RavisoError(f"cannot reach the Ray cluster at {address}: {e.strerror or e} "
                          "(is the head running? `ray status` on it tells)") from None


def cluster_cpus() -> int:
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def node_cpus() -> int:
    """The CPUs of the smallest live node (what one trial can be given on any node)."""
    import ray

    cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    return int(min([c for c in cpus if c > 0] or [1]))


def cluster_gpus() -> int:
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def trial_slots(cpus_per_trial: float, gpus_per_trial: float = 0) -> int:
    """How many trials of this size the connected cluster runs at once (at least 1): its CPUs
    (and GPUs) divided by the per-trial share. Used by cv and tune for max_concurrent_trials."""
    by_cpu = int(cluster_cpus() // max(cpus_per_trial, 1e-9))
    by_gpu = int(cluster_gpus() // gpus_per_trial) if gpus_per_trial else by_cpu
    return max(1, min(by_cpu, by_gpu))
