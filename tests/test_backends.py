"""Every per-image job gives the same output serially, in local processes and on a Dask LocalCluster."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from segdata import converters, parallel
from segdata.semantic import write_maps
from segdata.stats import class_stats
from segdata.validators import validate
from tests.conftest import run_segdata

BACKENDS = ["serial", "processes", "dask"]


@pytest.fixture(scope="module")
def backend_runner():
    """Call ``job(workers)`` under a backend; one LocalCluster serves the whole module."""
    started = False

    def run(backend: str, job):
        nonlocal started
        if backend == "dask" and not started:
            parallel.use_scheduler("local", workers=2)
            started = True
        if backend != "dask" and started:
            parallel.use_scheduler(None)
            started = False
        return job(1 if backend == "serial" else 2)

    yield run
    parallel.use_scheduler(None)


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def coco_sample(samples_dir):
    return converters.read(samples_dir / "coco")


def _outputs(backend_runner, job) -> list:
    return [backend_runner(backend, job) for backend in BACKENDS]


@pytest.mark.parametrize("target", ["coco", "coco-panoptic", "semantic-png", "instance-png", "voc", "cityscapes",
                                    "yolo", "labelme", "sa1b"])
def test_convert(backend_runner, coco_sample, tmp_path, target):
    writer = converters.get(target)

    def job(workers):
        out = tmp_path / f"{target}-{workers}-{parallel._dask is not None}"
        report = writer.write(coco_sample, out, workers=workers)
        return _tree_digest(out), report.to_dict()

    serial, processes, dask = _outputs(backend_runner, job)
    assert serial[0] and serial == processes == dask


def test_semantic_maps(backend_runner, coco_sample, tmp_path):
    def job(workers):
        out = tmp_path / f"maps-{workers}-{parallel._dask is not None}"
        report = write_maps(coco_sample, out, instance_ids=True, panoptic=True, workers=workers)
        return _tree_digest(out), {**report, "destination": None}

    serial, processes, dask = _outputs(backend_runner, job)
    assert len(serial[0]) > 20 and serial == processes == dask


def test_validate(backend_runner, samples_dir):
    dirty = converters.read(samples_dir / "coco-dirty")

    def job(workers):
        return [finding.to_dict() for finding in validate(dirty, workers=workers)]

    serial, processes, dask = _outputs(backend_runner, job)
    assert serial and serial == processes == dask


def test_stats(backend_runner, coco_sample):
    def job(workers):
        return class_stats(coco_sample, workers=workers).to_dict()

    serial, processes, dask = _outputs(backend_runner, job)
    assert serial["classes"] and serial == processes == dask


def test_cli_scheduler_option_gives_the_same_output(samples_dir, tmp_path):
    """The real command, in a subprocess, on a LocalCluster and on local processes."""
    outputs = []
    for backend in (["--workers", "2"], ["--scheduler", "local", "--workers", "2"]):
        out = tmp_path / backend[1]
        done = run_segdata("convert", str(samples_dir / "coco"), str(out), "--to", "voc", "--json", *backend)
        assert done.returncode == 0, done.stderr
        outputs.append((_tree_digest(out), json.loads(done.stdout)))
    assert outputs[0] == outputs[1]



def test_leakage(backend_runner, samples_dir):
    from segdata.validators.leakage import find_leaks

    dirty = converters.read(samples_dir / "coco-dirty")

    def job(workers):
        return find_leaks(dirty, workers=workers).to_dict()

    serial, processes, dask = _outputs(backend_runner, job)
    assert serial["pairs"] and serial == processes == dask


def test_report(backend_runner, samples_dir):
    from segdata.health import check_health

    dirty = converters.read(samples_dir / "coco-dirty")

    def job(workers):
        return check_health(dirty, workers=workers).to_dict()

    serial, processes, dask = _outputs(backend_runner, job)
    assert serial["verdict"] and serial == processes == dask


def test_the_cluster_keeps_no_copy_of_the_batches_it_was_sent(backend_runner):
    """Dask logs the last 1,000 message batches of a connection, each task's pickled images with them, unless told not to."""
    assert backend_runner("dask", lambda workers: sum(parallel.map_images(len, [b"x" * 1000] * 200,
                                                                          workers=workers))) == 200_000
    log = parallel._dask.scheduler_comm.recent_message_log  # the client's batched connection to the scheduler
    assert log.maxlen == 0 and not log
