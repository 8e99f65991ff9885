"""labeler.work's functions as Ray tasks over a Ray cluster; the only module that imports ray.

The driver (`labeler autolabel --ray ...`) walks, hashes and decodes the files and is the one
writer to the database; each image goes to a task that runs :func:`labeler.work.label_image` (the
same function the local worker processes run) and its faces, crops and proposals come back to the
driver, which stores them in input order. Workers need labeler installed (``pip install
'labeler[ray]'`` on every node, the same version); they need neither the files nor the database.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

from labeler.errors import LabelerError
from labeler.work import WorkSettings


def _call(fn: Callable, job: Any, settings: WorkSettings) -> Any:
    import cv2

    from labeler.work import steady_heap

    cv2.setNumThreads(1)  # one CPU per task (Ray sets OMP_NUM_THREADS to the task's CPUs)
    steady_heap()
    return fn(job, settings)


class RayRunner:
    """Submits jobs as Ray tasks (one CPU each). ``address``: ``auto`` (the running cluster, as
    ``ray start`` left it or $RAY_ADDRESS), ``local`` (start a Ray instance on this machine with
    ``workers`` CPUs) or a cluster address such as ``ray://head:10001``. A Ray already initialized
    in this process (``ray.init(...)`` by the caller) is used as it is."""

    def __init__(self, settings: WorkSettings, address: str = "auto", workers: int = 0):
        try:
            import ray
        except ImportError:
            raise LabelerError("--ray: expected the Ray extra installed, found no module 'ray'; "
                               "install it with pip install 'labeler[ray]' (on every node of the cluster)") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            try:
                if address == "local":
                    ray.init(num_cpus=workers or None, **kw)
                else:
                    ray.init(address=address, **kw)
            except ConnectionError as e:
                raise LabelerError(f"--ray {address}: expected a running Ray cluster, found none ({e}); start one with "
                                   "`ray start --head` (and `ray start --address HEAD:6379` on the other nodes), "
                                   "or use --ray local") from None
            self.started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.settings_ref = ray.put(settings)
        #: what the driver sent with its tasks, per worker function: [tasks, bytes of their arguments,
        #: pickled] (the settings went once, by reference; Ray's own task description comes on top)
        self.sent: dict[str, list[int]] = {}
        self.task = ray.remote(num_cpus=1, max_retries=2)(_call)

    def submit(self, fn: Callable, job: Any):
        n = self.sent.setdefault(fn.__name__, [0, 0])
        n[0] += 1
        n[1] += len(pickle.dumps((fn, job), protocol=5))
        return self.task.remote(fn, job, self.settings_ref)

    def result(self, handle) -> Any:
        return self.ray.get(handle)

    def first_done(self, handles: list) -> list[int]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        ready = set(ready)
        return [i for i, h in enumerate(handles) if h in ready]

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
