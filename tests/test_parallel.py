"""segdata/parallel.py: the same results in the same order, serial, pooled or on a Dask cluster."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from functools import partial

import numpy as np
import pytest
from distributed.protocol import dask_deserialize, dask_serialize

from segdata import parallel
from segdata.errors import UsageError
from segdata.parallel import map_batches, map_images
from tests.conftest import REPO


def _square(x: int) -> int:
    return x * x


def _where(x: int) -> int:
    return os.getpid()


def _page_faults_of_the_next_images(_) -> int:
    """Page faults while three 4 MB arrays are made together, after three such were freed; fewest of 3 tries.

    As an image's arrays (pixels, masks, a label map) are: ~3,075 faults if
    the freed ones went back to the system, 0 if they were kept.  glibc
    keeps a freed block in its heap only below its trim threshold, which by
    default is twice the largest array freed before (8 MB here).  A Dask
    worker took up to ~600 now and then, which is why the fewest counts.
    Huge pages are off, or a fresh mapping could take as few as 3 faults.
    """
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # NumPy 1
        from numpy.core.multiarray import _set_madvise_hugepage
    hugepages = _set_madvise_hugepage(False)
    try:
        faults = []
        for _ in range(3):
            arrays = [np.ones(4 << 20, np.uint8) for _ in range(3)]
            del arrays
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            arrays = [np.ones(4 << 20, np.uint8) for _ in range(3)]
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
            del arrays
        return min(faults)
    finally:
        _set_madvise_hugepage(hugepages)


def _slow_in_a_helper(main_pid: int, x: int) -> int:
    if os.getpid() != main_pid:
        time.sleep(0.3)
    return os.getpid()


def _sum_and_where(batch: list[int]) -> tuple[int, int, int]:
    return sum(batch), len(batch), os.getpid()


_UNPICKLED: list[int] = []  # the values of the _Items unpickled in this process


class _Item:
    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce__(self):
        return _unpickle_item, (self.value,)


def _unpickle_item(value: int) -> _Item:
    _UNPICKLED.append(value)
    return _Item(value)


def _value(item: _Item) -> int:
    return item.value


_DASK_DESERIALIZED: list[int] = []  # the values of the _Results Dask deserialised in this process
_BEFORE_THE_CLUSTER: list[int] = []  # what this process did before it started a cluster


class _Result:
    """A result of a type with serialisers of its own, as an array or bytes has: Dask would pick them."""

    def __init__(self, value: int) -> None:
        self.value = value


@dask_serialize.register(_Result)
def _serialize_result(result: _Result) -> tuple[dict, list[bytes]]:
    return {}, [str(result.value).encode()]


@dask_deserialize.register(_Result)
def _deserialize_result(header: dict, frames: list[bytes]) -> _Result:
    _DASK_DESERIALIZED.append(int(frames[0]))
    return _Result(int(frames[0]))


def _saw_before_the_cluster() -> int:
    return len(_BEFORE_THE_CLUSTER)


def _profiles(dask_worker) -> bool:
    return "profile" in dask_worker.periodic_callbacks


def _housekeeping_ms(dask_worker) -> tuple[float, ...]:
    callbacks = dask_worker.periodic_callbacks
    return tuple(callbacks[name].callback_time for name in ("tick", "monitor", "memory_monitor"))


def _done_at(x: int) -> float:
    time.sleep(1.0 if x == 0 else 0.01)
    return time.time()


def _fail_on_seven(x: int) -> int:
    if x == 7:
        raise ZeroDivisionError(f"item {x}")
    return x


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_results_come_back_in_input_order(workers):
    done = []
    results = list(map_images(_square, iter(range(103)), workers=workers, batch_size=5, progress=done.append))
    assert results == [x * x for x in range(103)]
    assert sum(done) == 103


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_batches_fold_where_they_run_and_come_back_in_order(workers):
    done = []
    folded = list(map_batches(_sum_and_where, list(range(1000)), workers=workers, batch_size=16,
                              progress=done.append))
    sizes = [size for _total, size, _pid in folded]
    starts = np.cumsum([0, *sizes[:-1]])
    assert [total for total, _size, _pid in folded] == [sum(range(a, a + n)) for a, n in zip(starts, sizes)]
    assert sum(sizes) == sum(done) == 1000 and max(sizes) == 16
    assert (len({pid for _t, _s, pid in folded}) > 1) == (workers > 1)  # the helpers fold their own batches


def test_this_process_and_its_helper_both_take_whole_batches():
    pids = list(map_images(_where, iter(range(400)), workers=2, batch_size=10))  # no length: all of 10
    batches = [set(pids[start:start + 10]) for start in range(0, 400, 10)]
    assert all(len(batch) == 1 for batch in batches)
    assert {os.getpid()} in batches and any(batch != {os.getpid()} for batch in batches)


def test_this_process_goes_on_with_new_batches_while_a_helper_is_slow():
    pids = list(map_images(partial(_slow_in_a_helper, os.getpid()), iter(range(30)), workers=2, batch_size=1))
    # the helper is sent ~3 batches it cannot give back; waiting for them, this process did 18 at most.
    # Now 25-29 here, and 24 once in CI: how many the helper's queue took first depends on its start
    assert pids.count(os.getpid()) >= 22


def test_the_last_batches_of_a_list_shrink_so_that_no_one_waits_long_for_them():
    sizes = [len(batch) for batch in parallel._batches(list(range(200)), 10, workers=2)]
    assert sum(sizes) == 200 and sizes[:13] == [10] * 13  # full while a batch is at most 1/8 of what remains
    assert sizes[13:] == sorted(sizes[13:], reverse=True) and sizes[-8:] == [1] * 8
    assert [len(batch) for batch in parallel._batches(iter(range(25)), 10, workers=2)] == [10, 10, 5]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_raises_its_own_error(workers):
    with pytest.raises(ZeroDivisionError, match="item 7"):
        list(map_images(_fail_on_seven, range(50), workers=workers, batch_size=3))


def test_started_helpers_are_reused():
    parallel.start_workers(2)
    pool = parallel._started[1]
    helpers = set(pool._processes)
    for _ in range(2):
        assert set(map_images(_where, range(30), workers=2, batch_size=5)) - {os.getpid()} <= helpers
    assert parallel._started[1] is pool and set(pool._processes) == helpers


@pytest.mark.skipif(parallel._libc is None, reason="glibc's malloc only")
def test_a_helper_reuses_the_pages_of_the_last_images_arrays():
    # in a new interpreter: a helper forked from this one would inherit the thresholds glibc has raised
    # here by now, after freeing larger arrays, and keep the pages whether it was set up or not
    code = ("from segdata import parallel; from tests.test_parallel import _page_faults_of_the_next_images; "
            "parallel.start_workers(2); "
            "print(parallel._started[1].submit(_page_faults_of_the_next_images, None).result())")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert int(done.stdout) < 50


def test_stopping_early_leaves_nothing_behind():
    results = map_images(_square, range(1000), workers=2, batch_size=4)
    assert [next(results) for _ in range(3)] == [0, 1, 4]
    results.close()  # the generator's finally cancels what was queued


def test_rejects_zero_workers():
    with pytest.raises(ValueError, match="at least 1, found 0"):
        list(map_images(_square, [1], workers=0))


def test_dask_local_cluster_gives_the_same_results(recwarn):
    with socket.socket() as dashboard_port:
        try:
            dashboard_port.bind(("127.0.0.1", 8787))  # as a second command's cluster would find it
        except OSError:
            pass  # taken already
        _BEFORE_THE_CLUSTER.append(1)
        parallel.use_scheduler("local", workers=2)
    try:
        done = []
        squares = list(map_images(_square, range(103), batch_size=5, progress=done.append))
        assert squares == [x * x for x in range(103)]
        assert sum(done) == 103
        assert os.getpid() not in set(map_images(_where, range(20), batch_size=5))  # all of it on the cluster
        # spawned, as a library caller's process, busy or threaded, should not be forked unasked
        assert list(parallel._dask.run(_saw_before_the_cluster).values()) == [0, 0]
        assert list(map_batches(len, iter(range(600)))) == [256, 256, 88]  # tasks worth a cluster's overhead
        sizes = list(map_batches(len, range(20000)))  # of a sequence, larger ones whose last ones shrink
        assert sizes[:3] == [1024] * 3 and sizes == sorted(sizes, reverse=True) and sizes[-2] == 64
        assert sum(sizes) == 20000
        done_at = list(map_images(_done_at, range(12), batch_size=1))  # while the first runs, the other
        assert sum(t < done_at[0] for t in done_at[1:]) >= 6  # worker goes on past the 4 batches in flight
        if parallel._libc is not None:  # a worker's heap reuses freed pages, as a local helper's does
            assert list(map_images(_page_faults_of_the_next_images, [None])) < [50]
        # its scheduler runs in this process and passes the batches on without unpickling them
        assert list(map_images(_value, [_Item(v) for v in range(10)])) == list(range(10)) and not _UNPICKLED
        # and a batch's results come back as one pickle, not serialised by Dask one by one
        assert [r.value for r in map_images(_Result, range(10))] == list(range(10)) and not _DASK_DESERIALIZED
        # its workers do not sample their stacks for a dashboard no one serves
        assert not any(parallel._dask.run(_profiles).values())
        # and check their event loop each second, not every 20 ms; the host and their memory less often too
        assert set(parallel._dask.run(_housekeeping_ms).values()) == {(1000, 2000, 500)}
    finally:
        parallel.use_scheduler(None)
    assert parallel._dask is None
    assert not [w for w in recwarn if "already in use" in str(w.message)]


def _prepared_for() -> int | None:
    return parallel._prepared


def test_a_prepared_local_cluster_is_up_at_once_its_workers_forked_from_this_process(monkeypatch):
    monkeypatch.setattr(parallel, "_prepared", None)  # prepare() sets it for the command; put back after
    parallel.prepare(2, "local")
    try:
        assert parallel.on_cluster() and len(parallel._dask.nthreads()) == 2
        # forked once prepare() knew the workers: a spawned worker (0.46 s of CPU each) imports them anew
        assert list(parallel._dask.run(_prepared_for).values()) == [2, 2]
        assert not set(map_images(_where, range(200))) & {os.getpid()}
    finally:
        parallel.use_scheduler(None)
    assert parallel._dask is None


def test_readers_stay_off_a_local_cluster_while_the_helpers_are_up_and_a_remote_one_reads(monkeypatch):
    from distributed import LocalCluster

    monkeypatch.setattr(parallel, "_prepared", None)
    parallel.prepare(2, "local")
    try:
        local = frozenset({os.getpid(), *parallel._started[1]._processes})
        read = list(map_images(_where, range(200), reading=True))
        assert set(read) <= local and not parallel.on_cluster(reading=True)  # here and in the helper
        assert parallel._started is not None and parallel.on_cluster()
        assert not set(map_images(_where, range(200))) & local  # a job goes to the cluster; the helpers end
        assert parallel._started is None and parallel.on_cluster(reading=True)
        assert not set(map_images(_where, range(200), reading=True)) & local  # then readers too
    finally:
        parallel.use_scheduler(None)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as remote:
        parallel.use_scheduler(remote.scheduler_address)
        try:
            assert os.getpid() not in set(map_images(_where, range(20), reading=True))
        finally:
            parallel.use_scheduler(None)


def test_unreachable_scheduler_is_a_usage_error():
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        parallel.use_scheduler("tcp://127.0.0.1:9", timeout=1)


def test_a_command_prepared_for_workers_runs_one_blas_thread_per_process():
    """--workers N means N cores: numpy's BLAS would otherwise take every core in each process."""
    import os
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: BLAS has one thread anyway")
    probe = ("import numpy; from threadpoolctl import threadpool_info as info; from segdata import parallel; "
             "before = max(p['num_threads'] for p in info()); parallel.prepare(1); "
             "print(before, max(p['num_threads'] for p in info()))")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    before, after = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                   env=env).stdout.split()
    assert int(before) > 1 and int(after) == 1
