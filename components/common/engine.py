"""Where the streaming stages run their per-shard work: in the task's process, or on Dask.

``open_engine(engine)`` is a context manager giving an ``Engine`` whose ``map(func, items)``
applies a picklable top-level function to every item (a dataset part, say) and returns the
results in the order of ``items``. The stage then merges them (mergeable statistics, the
parts' counts): the same merge whatever the engine, so the result does not depend on it.

The ``engine`` parameter:

- ``local`` (the default): ``map`` is a plain loop in the task's process; Dask is not imported.
- ``dask``: a Dask distributed cluster started for the task and stopped when it ends, on failure
  too. Under kfp.local and in the tests, a ``LocalCluster`` of worker processes (one thread each,
  as many as ``$MLSTAGES_DASK_WORKERS`` or else the task's CPU allowance). On Kubernetes, when the settings file has a ``dask``
  section (``mlstages compile --settings``), the task gets it as ``$MLSTAGES_DASK_KUBERNETES`` and
  creates a ``DaskCluster`` through the dask-kubernetes operator instead (``kubernetes_spec``):
  workers, resources and image from the settings, deleted when the task ends.
- ``tcp://host:port`` (or ``tls://``): the scheduler of a cluster that already runs; the task only
  connects to it.

Why a process pool is not enough: a LocalCluster is the same scheduler, protocol and worker code
as a cluster's, so what runs here runs on a cluster. The workers read the parts themselves (only
their paths travel), so the parts must be where the workers can read them: local folders for a
LocalCluster; on a cluster's pods, object storage. A task's input artifacts are local copies in
its own pod (KFP's launcher downloads them), which other pods cannot see: the component names its
artifacts' URIs (``open_engine(locations={artifact.path: artifact.uri})``), and on a cluster an
item whose file lies in such a folder is sent as its ``gs://`` URI, which the worker downloads to
a temporary file, reads, and deletes (``_on_local_copy``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstages.components.common.errors import MlstagesError, ParameterError
from mlstages.components.common.progress import streamed

LOCAL, DASK = "local", "dask"
DEFAULT_ENGINE = LOCAL
ENGINES = (LOCAL, DASK)
SCHEDULER_SCHEMES = ("tcp://", "tls://")
# Set on the tasks by `mlstages compile --settings` when the settings file has a `dask` section:
# the DaskCluster to create, as JSON (see tooling/platform.py).
KUBERNETES_ENV = "MLSTAGES_DASK_KUBERNETES"
# The worker processes of a LocalCluster, when set (the benchmarks and the tests set it); else the
# task's CPU allowance.
WORKERS_ENV = "MLSTAGES_DASK_WORKERS"
# How long to wait for a scheduler given by address: long enough for a busy scheduler to answer,
# short enough that a wrong address fails the task at once.
CONNECT_TIMEOUT_SECONDS = 10
# How long to wait for a first worker: a DaskCluster's worker pods may be pulling the image.
WORKER_TIMEOUT_SECONDS = 300

log = logging.getLogger(__name__)


class WorkerError(MlstagesError):
    """The Dask workers cannot run a stage's work: they lack its code, or they die running it."""


def check_engine(engine: str) -> str:
    """``engine`` if the suite can run on it; otherwise a ParameterError in one line."""
    if isinstance(engine, str) and (engine in ENGINES or engine.startswith(SCHEDULER_SCHEMES)):
        if engine.startswith(SCHEDULER_SCHEMES) and ":" not in engine.split("://", 1)[1]:
            raise ParameterError(
                f"parameter engine={engine!r}: a scheduler address needs a port, such as tcp://host:8786"
            )
        return engine
    raise ParameterError(
        f"parameter engine={engine!r} is not 'local', 'dask' or a Dask scheduler address such as "
        "tcp://host:8786"
    )


@dataclass
class Engine:
    """Runs ``map`` on the task's process (``client`` None) or on a Dask cluster."""

    name: str
    client: Any = None
    workers: tuple[str, ...] = ()
    # Local folders whose files the workers read at a gs:// URI instead (a cluster's pods), by folder.
    locations: dict[str, str] = field(default_factory=dict)
    # The modules every worker was found to import (check_importable).
    importable: set[str] = field(default_factory=set)

    @property
    def distributed(self) -> bool:
        return self.client is not None

    def located(self, item: Any) -> Any:
        """``item`` as a worker can read it: a part (a file path, a tuple whose first value is one,
        or a dataclass with a ``file``) in a folder of ``locations`` gets the file's URI there;
        anything else is returned as it is."""
        file = _file_of(item)
        if file is None:
            return item
        for folder, uri in self.locations.items():
            try:
                relative = Path(file).resolve().relative_to(Path(folder).resolve())
            except ValueError:
                continue
            return _with_file(item, f"{uri.rstrip('/')}/{relative.as_posix()}")
        return item

    def worker_function(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` as a worker runs it on a ``located`` part: its gs:// file downloaded first."""
        return functools.partial(_on_local_copy, func) if self.locations else func

    def map(self, func: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
        """``[func(item, **shared) for item in items]``, on the cluster when there is one."""
        return list(self.imap(func, items, **shared))

    def imap(self, func: Callable[..., Any], items: Sequence[Any], **shared: Any) -> Iterator[Any]:
        """``func(item, **shared)`` of each item, yielded in the order of ``items``.

        On a cluster at most two items a worker are in flight: a stage that merges each result as
        it comes holds a few parts' summaries, not all of them (a part's exact statistics are
        hundreds of MB). ``shared`` values (a model, a reference) are sent to every worker once,
        not once per item. An exception raised by ``func`` is raised here, of the same type.
        """
        if self.client is None:
            for item in items:
                yield func(item, **shared)
            return
        if not items:
            return
        self.check_importable(func)
        # Scattered inside a list: scatter reads a bare dict or list as many values, not one.
        sent = {k: self.client.scatter([v], broadcast=True)[0] for k, v in shared.items()}
        window = 2 * max(1, len(self.workers))
        pending = list(items)
        worker_func = self.worker_function(func)
        running: collections.deque[tuple[Any, Any]] = collections.deque()
        done = 0
        try:
            while pending or running:
                while pending and len(running) < window:
                    item = pending.pop(0)
                    future = self.client.submit(worker_func, self.located(item), pure=False, **sent)
                    running.append((future, item))
                future, item = running.popleft()
                result = _result(future, self.name, func, item)
                future.release()
                done += 1
                # The workers' own lines go nowhere: the task says how many parts are back.
                streamed("parts done on the cluster", done, len(items), unit="parts")
                yield result
        finally:
            for future, _ in running:
                future.cancel()

    def check_importable(self, func: Callable[..., Any]) -> None:
        """Every worker imports the module ``func`` lives in, or a WorkerError saying so.

        A worker that cannot unpickle a task's function (a worker image without the task's code)
        fails while reading the message, and the task would then wait for its result forever."""
        module = getattr(func, "__module__", None)
        if not module or module in ("__main__", "builtins") or module in self.importable:
            return
        try:
            # exec, a builtin every worker has: a function of ours would need the very import
            # being checked to reach the worker.
            self.client.run(exec, f"import importlib; importlib.import_module({module!r})")
        except ImportError as exc:
            raise WorkerError(
                f"engine {self.name}: the Dask workers cannot import {module} ({exc}): run them on the "
                "task's image (the settings' dask section), with the same mlstages as the task"
            ) from None
        self.importable.add(module)


def _result(future: Any, engine: str, func: Callable[..., Any], item: Any) -> Any:
    """The future's result; a worker lost while running it, as a WorkerError naming the part."""
    from distributed import KilledWorker  # loaded already: there is a cluster

    try:
        return future.result()
    except KilledWorker:
        part = _file_of(item) or f"item {item!r}"[:200]
        raise WorkerError(
            f"engine {engine}: every Dask worker that ran {getattr(func, '__name__', func)} on {part} "
            "died doing so (most often out of memory): give the workers more memory (the settings' dask "
            "section), or use engine='local'"
        ) from None


def _on_local_copy(func: Callable[..., Any], item: Any, *args: Any, **shared: Any) -> Any:
    """``func(item, *args, **shared)`` on a worker, the item's gs:// file downloaded to a
    temporary file first (and deleted after)."""
    import tempfile

    from mlstages.components.common import storage

    file = _file_of(item)
    if file is None or not storage.is_gcs_uri(file):
        return func(item, *args, **shared)
    with tempfile.TemporaryDirectory(prefix="mlstages-part-") as scratch:
        local = Path(scratch) / file.rsplit("/", 1)[-1]
        storage.download_file(file, local)
        return func(_with_file(item, str(local)), *args, **shared)


def _file_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item
    if isinstance(item, tuple) and item and isinstance(item[0], str):
        return item[0]
    if dataclasses.is_dataclass(item) and isinstance(getattr(item, "file", None), str):
        return item.file
    return None


def _with_file(item: Any, file: str) -> Any:
    if isinstance(item, str):
        return file
    if isinstance(item, tuple):
        return (file, *item[1:])
    return dataclasses.replace(item, file=file)


def remote_locations(locations: Mapping[str, str]) -> dict[str, str]:
    """The folders of ``locations`` (local folder: its URI) whose URI is in object storage."""
    from mlstages.components.common import storage

    return {
        str(folder): str(uri) for folder, uri in locations.items() if uri and storage.is_gcs_uri(str(uri))
    }


@contextlib.contextmanager
def open_engine(
    engine: str = DEFAULT_ENGINE,
    *,
    workers: int | None = None,
    say: Callable[[str], None] = print,
    locations: Mapping[str, str] | None = None,
    read_uris: bool | None = None,
) -> Iterator[Engine]:
    """The engine named by the ``engine`` parameter, started for the block and stopped after it
    (see the module docstring). ``workers``: for a LocalCluster, its worker processes (default:
    the task's CPU allowance). ``say`` logs where the work runs (the task's log).

    ``locations``: the task's artifact folders and their URIs (``{artifact.path: artifact.uri}``).
    ``read_uris``: whether the workers read those folders' files at their gs:// URIs; by default
    on a cluster's pods (a DaskCluster, or a scheduler given by address), not on a LocalCluster,
    whose workers share the task's files."""
    check_engine(engine)
    if engine == LOCAL:
        yield Engine(LOCAL)
        return
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(_client(engine, workers, say))
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT_SECONDS)
        except TimeoutError:
            raise ParameterError(
                f"parameter engine={engine!r}: the Dask scheduler at {client.scheduler.address} has no "
                f"worker after {WORKER_TIMEOUT_SECONDS} s; start workers for it, or use engine='dask'"
            ) from None
        info = client.scheduler_info()
        names = tuple(f"{w.get('name', '?')}@{address}" for address, w in sorted(info["workers"].items()))
        say(
            f"engine {engine}: scheduler {client.scheduler.address}, {len(names)} worker(s): {', '.join(names)}"
        )
        if read_uris is None:
            read_uris = engine.startswith(SCHEDULER_SCHEMES) or bool(
                os.environ.get(KUBERNETES_ENV, "").strip()
            )
        remote = remote_locations(locations or {}) if read_uris else {}
        if remote:
            say(f"engine {engine}: the workers read {', '.join(sorted(remote.values()))} from object storage")
        yield Engine(engine, client, names, remote)


@contextlib.contextmanager
def _client(engine: str, workers: int | None, say: Callable[[str], None]) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ParameterError(
            f"parameter engine={engine!r} needs Dask: pip install 'mlstages[dask]' (the images of the "
            "streaming stages have it)"
        ) from exc
    if engine.startswith(SCHEDULER_SCHEMES):
        try:
            client = Client(engine, timeout=CONNECT_TIMEOUT_SECONDS)
        except (OSError, TimeoutError) as exc:
            raise ParameterError(
                f"parameter engine={engine!r}: no Dask scheduler answered there within "
                f"{CONNECT_TIMEOUT_SECONDS} s ({type(exc).__name__})"
            ) from None
        with client:
            yield client
        return
    spec = os.environ.get(KUBERNETES_ENV, "").strip()
    if spec:
        with _kubernetes_cluster(json.loads(spec), say) as cluster, Client(cluster) as client:
            yield client
        return
    count = workers or _local_workers()
    # One thread a worker: the work is pandas and NumPy that holds the GIL, and the workers inherit
    # the task's thread limits (limit_threads) for BLAS.
    with (
        LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            # Any free port: a fixed one (8787) is taken by the next task's cluster on the machine.
            dashboard_address=":0",
            worker_dashboard_address=None,
            silence_logs=logging.WARNING,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client
    say(f"engine {engine}: LocalCluster stopped")


def _local_workers() -> int:
    from mlstages.components.common.threads import cpu_allowance

    configured = os.environ.get(WORKERS_ENV, "").strip()
    if not configured:
        return cpu_allowance()
    if not configured.isdigit() or int(configured) < 1:
        raise ParameterError(f"${WORKERS_ENV}={configured!r} must be a positive whole number of workers")
    return int(configured)


# --- Kubernetes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DaskKubernetesSettings:
    """The ``dask`` section of a settings file: the DaskCluster a task creates for engine=dask."""

    # Empty: the stage's own image (tooling/platform.py fills it in per task).
    image: str = ""
    workers: int = 2
    worker_cpu: str = "1"
    worker_memory: str = "4Gi"
    namespace: str | None = None
    # The operator's pods need to read the parts and write shards: the same secret as the tasks.
    env: Mapping[str, str] | None = None

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in self.__dict__.items() if v is not None}, sort_keys=True)


def kubernetes_spec(settings: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The DaskCluster resource (kubernetes.dask.org/v1) for ``settings``, as the operator's own
    ``make_cluster_spec`` builds it: a scheduler and ``workers`` workers of ``image``, each worker
    requesting and limited to ``worker_cpu`` and ``worker_memory``, one thread a worker."""
    from dask_kubernetes.operator import make_cluster_spec

    resources = {
        "requests": {"cpu": str(settings["worker_cpu"]), "memory": str(settings["worker_memory"])},
        "limits": {"cpu": str(settings["worker_cpu"]), "memory": str(settings["worker_memory"])},
    }
    spec = make_cluster_spec(
        name=name,
        image=settings["image"],
        n_workers=int(settings["workers"]),
        resources=resources,
        env=dict(settings.get("env") or {}),
        worker_command=["dask-worker", "--nthreads", "1"],
    )
    if settings.get("namespace"):
        spec["metadata"]["namespace"] = settings["namespace"]
    return spec


@contextlib.contextmanager
def _kubernetes_cluster(settings: Mapping[str, Any], say: Callable[[str], None]) -> Iterator[Any]:
    """A DaskCluster created through the operator, deleted when the block ends (on failure too:
    ``shutdown_on_close`` deletes the resource, and the operator its pods)."""
    import uuid

    try:
        from dask_kubernetes.operator import KubeCluster
    except ImportError as exc:
        raise ParameterError(
            "parameter engine='dask' with the settings file's dask section creates a DaskCluster "
            "through the dask-kubernetes operator, whose client this image lacks: build the stage "
            "images with --build-arg DASK_KUBERNETES=1, or give engine a running scheduler's tcp:// "
            "address"
        ) from exc

    name = f"mlstages-{uuid.uuid4().hex[:10]}"
    cluster = KubeCluster(
        custom_cluster_spec=kubernetes_spec(settings, name),
        namespace=settings.get("namespace"),
        shutdown_on_close=True,
        quiet=True,
    )
    say(f"engine dask: DaskCluster {name} created through the dask-kubernetes operator")
    try:
        yield cluster
    finally:
        cluster.close()
        say(f"engine dask: DaskCluster {name} deleted")
