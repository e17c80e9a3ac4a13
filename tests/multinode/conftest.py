"""A several-node Ray cluster on one machine, and an S3 API on loopback, for the node-loss tests.

The cluster is Ray's own `ray.cluster_utils.Cluster`: a head plus worker nodes, each its own
raylet with its own object store, all on 127.0.0.1. The head has no CPUs (as on a real cluster,
where the head only coordinates), so trials and DDP workers run on the worker nodes; each worker
node has one CPU and a custom resource naming it. A node is killed the hard way (SIGKILL of its
raylet, object store and workers: an OOM kill or a spot reclaim without notice), and the GCS
notices within seconds (short health checks).

The cluster lives in its own Ray temp directory (`RAY_TMPDIR`): Ray records "the current
cluster" there, and a plain `ray.init()` elsewhere on the machine would otherwise attach to it.
These tests need the process's Ray connection, so the shared `ray_session` is shut down first;
`tests/conftest.py` orders multinode tests after every other test.

The S3 server is moto's (`ThreadedMotoServer`) on a free loopback port; credentials and the
endpoint reach raviso, Ray and every node only through the environment (`AWS_*`), as on a cloud
node with an instance profile.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time

import pytest

BUCKET = "raviso-test"
NODE_CPUS = 1
# a killed raylet refuses connections at once: three missed 0.5 s checks mark it dead; a slow
# but alive raylet on a busy machine still has 5 s to answer each check
HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
          "health_check_timeout_ms": 5000, "health_check_failure_threshold": 3}


class MultiNode:
    """The started cluster: `add_worker()`, `kill(node)`, `node_of(actor class)`."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.added = 0

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_worker(self):
        self.added += 1
        return self.cluster.add_node(num_cpus=NODE_CPUS, resources={f"node_{self.added}": 1},
                                     object_store_memory=150 << 20)

    def workers(self) -> list:
        return sorted(self.cluster.worker_nodes, key=lambda n: n.node_id)

    def ensure_workers(self, n: int) -> None:
        while len(self.cluster.worker_nodes) < n:
            self.add_worker()
        self.wait_alive()

    def kill(self, node) -> None:
        """SIGKILL every process of `node`, then wait until the GCS has marked it dead."""
        import ray

        self.cluster.remove_node(node, allow_graceful=False)
        deadline = time.monotonic() + 60
        while any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
            assert time.monotonic() < deadline, "the GCS did not notice the dead node in 60 s"
            time.sleep(0.1)

    def wait_alive(self) -> None:
        self.cluster.wait_for_nodes(timeout=60)

    def actors_on(self, class_name: str) -> dict[str, set[int]]:
        """{node id: pids} of this cluster's live actors of `class_name` (the GCS actor table:
        the state API needs the dashboard, which these nodes do not start)."""
        from ray._private.state import actors

        out: dict[str, set[int]] = {}
        for a in actors().values():
            if a["ActorClassName"] == class_name and a["State"] == "ALIVE" and a["Pid"]:
                out.setdefault(a["Address"]["NodeID"], set()).add(a["Pid"])
        return out


@pytest.fixture(scope="session")
def s3():
    """An S3 API on loopback; the test process's environment points every client at it. Yields
    a pyarrow S3FileSystem on it (made from the environment alone)."""
    pytest.importorskip("moto", reason="the S3 tests need moto[server] (the test extra)")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)      # one log line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "raviso-test", "AWS_SECRET_ACCESS_KEY": "raviso-test",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_EC2_METADATA_DISABLED": "true"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import pyarrow.fs as pafs

        pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"],
                          allow_bucket_creation=True).create_dir(BUCKET)
        yield pafs.FileSystem.from_uri(f"s3://{BUCKET}")[0]
    finally:
        _restore_env(before)
        server.stop()


@pytest.fixture(scope="session")
def multinode(s3):
    """Head (0 CPUs) + 2 worker nodes of 1 CPU each, the process connected to it; every process
    this fixture started is ended at teardown (`Cluster.shutdown` kills each node's processes)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():              # the shared session: tests after these ones are none
        ray.shutdown()
    temp = tempfile.mkdtemp(prefix="rvmn", dir="/tmp")          # short: Ray's unix sockets
    env = {"RAY_TMPDIR": temp, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_worker_niceness": "0"}
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": 300 << 20, "include_dashboard": False,
        "_system_config": HEALTH})
    try:
        mn = MultiNode(cluster)
        mn.ensure_workers(2)
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        yield mn
    finally:
        ray.shutdown()
        cluster.shutdown()
        _restore_env(before)
        shutil.rmtree(temp, ignore_errors=True)


def _restore_env(before: dict) -> None:
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
