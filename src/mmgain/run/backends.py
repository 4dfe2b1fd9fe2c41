"""Where the chunks of a run are trained: this process (``local``) or a Ray cluster (``ray``).

A backend takes a :class:`~.runner.RunPlan` and the chunks still to do, and yields
``(chunk index, part)`` as each chunk finishes, in any order; the runner commits each
part to the run's store at once.  Both backends call the same :func:`~.chunk.run_chunk`,
so they compute the same numbers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import torch

from ..errors import SpecError
from ..registry import Registry
from ..training.batched import DeviceData, set_threads
from .chunk import ChunkJob, run_chunk

if TYPE_CHECKING:
    from .runner import RunPlan

BACKENDS: Registry[type] = Registry("backend")


@BACKENDS.register("local")
class LocalBackend:
    """Every chunk in this process, one after another, on the plan's device."""

    def run(self, plan: "RunPlan", todo: list[int], progress: bool = True) -> Iterator[tuple[int, dict]]:
        n_models = sum(len(plan.chunks[ci]) for ci in todo) * len(plan.subsets)
        bar = plan.progress(todo, plan.spec.name) if progress and todo else None
        try:
            for ci in todo:
                n_here = len(plan.chunks[ci]) * len(plan.subsets)
                probed = [0]

                def on_probe(done: int, n_here=n_here, probed=probed) -> None:
                    bar.phase(f"probing the latents of {n_here} models")
                    bar.probed(done - probed[0])
                    probed[0] = done

                if bar:
                    train_s, probe_s = plan.chunk_seconds(ci)
                    bar.chunk(plan.n_steps([ci]), train_s, len(plan.chunks[ci]), probe_s)
                    bar.phase(f"training {n_models} models" if len(todo) == 1 else
                              f"training {n_here} of {n_models} models")
                yield ci, run_chunk(plan.job(ci), plan.train, plan.test, plan.device,
                                    on_step=bar.step if bar else None, on_probe=on_probe if bar else None)
            if bar:
                bar.close()
        except BaseException:
            if bar:
                bar.stop()
            raise


def _ray_chunk(job: ChunkJob, train, test, device: str, threads: int) -> dict:
    """A Ray task: one chunk on the worker's device (Ray sets CUDA_VISIBLE_DEVICES)."""
    set_threads(threads)
    dev = torch.device(device)
    return run_chunk(job, DeviceData.from_numpy(*train, dev), DeviceData.from_numpy(*test, dev), dev)


def _check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Refuse a cluster address where nothing listens: ``ray.init`` would retry it for minutes."""
    if address in (None, "", "auto", "local"):
        return
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"--address {address!r}: give the Ray cluster as HOST:PORT (e.g. 10.0.0.5:6379), "
                        "'auto', or leave it out for a local instance")
    import socket
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise SpecError(f"--address {address}: nothing answers at {host}:{port} within {timeout:g} s "
                        f"({exc.strerror or exc}); start the cluster there (ray start --head), or leave out "
                        "--address to run on a local instance") from None


@BACKENDS.register("ray")
class RayBackend:
    """Chunks as Ray tasks on a local instance (default) or the cluster at ``address``.

    Each task asks for ``threads`` CPUs and, on a CUDA run, one GPU; the data go to the
    object store once.  A task whose worker dies is run again (``max_retries``), and its
    chunk is committed only when a run of it finishes, so nothing is lost or counted twice.
    """

    def __init__(self, address: str | None = None, threads: int = 1, max_retries: int = 3):
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SpecError("--backend ray needs Ray: pip install 'mmgain[ray]'") from None
        self.address, self.threads, self.max_retries = address, threads, max_retries

    def run(self, plan: "RunPlan", todo: list[int], progress: bool = True) -> Iterator[tuple[int, dict]]:
        import ray

        started = not ray.is_initialized()
        if started:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, logging_level="ERROR",
                         log_to_driver=False, configure_logging=True)
            except (ConnectionError, ValueError, RuntimeError, OSError, ray.exceptions.RayError) as exc:
                where = self.address or "a new local instance"
                raise SpecError(f"--backend ray: cannot start or reach Ray at {where} ({exc})") from None
        futures: dict = {}
        bar = plan.progress(todo, plan.spec.name) if progress and todo else None
        if bar:
            bar.phase(f"training and probing {len(todo)} chunk(s) on Ray")
        try:
            cuda = plan.device.type == "cuda"
            task = ray.remote(_ray_chunk).options(num_cpus=self.threads, num_gpus=1 if cuda else 0,
                                                  max_retries=self.max_retries, retry_exceptions=False)
            train, test = ray.put(plan.train.to_numpy()), ray.put(plan.test.to_numpy())
            device = "cuda" if cuda else "cpu"
            futures = {task.remote(plan.job(ci), train, test, device, self.threads): ci for ci in todo}
            while futures:
                (ready,), _ = ray.wait(list(futures), num_returns=1)
                ci = futures.pop(ready)
                part = ray.get(ready)
                if bar:
                    train_s, probe_s = plan.chunk_seconds(ci)
                    bar.chunk(1, train_s, 1, probe_s)
                    bar.step()
                    bar.probed()
                yield ci, part
            if bar:
                bar.close()
        finally:
            if bar:
                bar.stop()
            for f in futures:
                ray.cancel(f, force=True)
            if started:
                ray.shutdown()


def get_backend(name: str, address: str | None = None, threads: int = 1):
    cls = BACKENDS.get(name)
    if address is not None and cls is not RayBackend:
        raise SpecError(f"--address is for --backend ray, not {name}")
    return cls(address=address, threads=threads) if cls is RayBackend else cls()


__all__ = ["BACKENDS", "LocalBackend", "RayBackend", "get_backend"]
