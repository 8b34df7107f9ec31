"""How the CPU kernels use threads: BLAS on one thread, the batch shared out in chunks.

A training step on the CPU is a long chain of short calls: a GEMM, a Numba
loop, another GEMM. Handing each call to a thread pool that splits it into
fixed parts (what BLAS does) makes every call wait for its slowest part. On a
quiet machine that costs little; on a shared one it is ruinous. A BLAS worker
thread that has not been scheduled holds up the GEMM until it is, and after
the GEMM it keeps spinning for a while, taking the core from the next Numba
loop. On the development machines (2 cores, load 5 to 7, Linux grouping all
threads of a session into one share of the CPU) two BLAS threads made the
MNIST CNN step 4x slower than one thread and the MLP step 15x slower (median;
benchmarks/NOTES.md, "training step W1/W2").

So the kernels that split their work (the convolutions) run BLAS on one
thread and share the batch out themselves: the batch is cut into chunks of a
few images, and each of `lane_count()` threads (the calling thread and
`lane_count() - 1` helpers) takes the next chunk until none is left. Nobody
waits for a thread that has not started: if a helper is not scheduled, the
calling thread simply takes every chunk itself. Idle helpers sleep, they do
not spin. For this the work done per chunk must release Python's GIL: NumPy's
matmul does, and the Numba cores are compiled with `nogil=True`.

Chunks of about 1 MiB of column matrix also stay in the core's cache between
im2col and the GEMM that reads them: about 20% faster on one thread than one
GEMM over the whole batch.

`lane_count()` is Numba's thread count (NUMBA_NUM_THREADS, or
numba.set_num_threads). BLAS's thread count is read and set through
threadpoolctl where it is installed; without it, BLAS is taken to be
single-threaded only when OPENBLAS_NUM_THREADS (or OMP_NUM_THREADS) is 1, and
otherwise the kernels fall back to one GEMM per pass on one lane, leaving the
threads to BLAS.
"""
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

# The chunk size when BLAS runs on one thread: about 1 MiB of column matrix,
# which measured best between 0.25 and 2 MiB (benchmarks/NOTES.md).
CACHE_CHUNK_BYTES = 2**20
# When BLAS keeps its own threads, one GEMM per pass (each BLAS call makes its
# threads meet, so fewer and larger calls are better); memory stays bounded.
BLAS_THREADED_CHUNK_BYTES = 32 * 2**20

_blas = {"looked_up": False, "controllers": ()}
_helpers = {"count": 0, "pool": None}
# When work was last shared out over more than one lane (time.monotonic()).
_lanes_shared = {"last": float("-inf")}


def lane_count():
    """How many threads a kernel may use: Numba's thread count."""
    return numba.get_num_threads()


def _blas_controllers():
    """threadpoolctl's controllers of the loaded BLAS libraries, or () without it."""
    if not _blas["looked_up"]:
        _blas["looked_up"] = True
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            return ()
        _blas["controllers"] = tuple(ThreadpoolController().select(user_api="blas").lib_controllers)
    return _blas["controllers"]


def blas_is_single_threaded():
    """True when every BLAS call already runs on one thread."""
    controllers = _blas_controllers()
    if controllers:
        return all(controller.get_num_threads() == 1 for controller in controllers)
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if variable in os.environ:
            return os.environ[variable].strip() == "1"
    return False


def can_share_out():
    """True when BLAS can be held to one thread, so the kernels may use their lanes."""
    return bool(_blas_controllers()) or blas_is_single_threaded()


# Inside blas_on_one_thread(), where threadpoolctl holds BLAS to one thread:
# the lane count, read once on entering.  A Dense layer's products ask for it
# at every call (matmul_on_every_lane), and numba.get_num_threads() costs a
# microsecond or two each time, several times that in a training step, whose
# products have just pushed the interpreter's data out of the cache.  0 outside.
_held = {"lanes": 0}


class blas_on_one_thread:
    """BLAS on one thread inside the block, its previous setting restored after:

        with blas_on_one_thread():
            ...

    A class rather than a @contextmanager generator: it is entered at every
    training step, and the generator's machinery costs about a microsecond more.
    """

    def __enter__(self):
        self.changed = []
        for controller in _blas_controllers():
            threads = controller.get_num_threads()
            if threads != 1:
                controller.set_num_threads(1)
                self.changed.append((controller, threads))
        self.lanes_outside = _held["lanes"]
        _held["lanes"] = lane_count() if _blas_controllers() else 0
        return self

    def __exit__(self, *exc_info):
        _held["lanes"] = self.lanes_outside
        for controller, threads in self.changed:
            controller.set_num_threads(threads)


def _helper_pool(helpers):
    if _helpers["count"] != helpers:
        if _helpers["pool"] is not None:
            _helpers["pool"].shutdown(wait=False)
        _helpers["pool"] = ThreadPoolExecutor(helpers, thread_name_prefix="deepbreadth-lane")
        _helpers["count"] = helpers
    return _helpers["pool"]


class _Chunks:
    """Chunk indices 0 .. count-1, handed out one at a time to whichever lane asks."""

    def __init__(self, count, work):
        self.count = count
        self.work = work
        self.next = 0
        self.running = 0
        self.error = None
        self.changed = threading.Condition()

    def take(self, lane):
        """Run work(index, lane) for the next free index until none is left."""
        while True:
            with self.changed:
                if self.next >= self.count or self.error is not None:
                    return
                index = self.next
                self.next += 1
                self.running += 1
            try:
                self.work(index, lane)
            except BaseException as error:  # re-raised in the calling thread
                self.error = error
            finally:
                with self.changed:
                    self.running -= 1
                    self.changed.notify_all()

    def wait_for_running(self):
        """Wait for chunks other lanes have started; a lane that never started
        finds nothing left when it does, and is not waited for."""
        with self.changed:
            while self.running:
                self.changed.wait()
        if self.error is not None:
            raise self.error


def for_each_chunk(count, work, lanes):
    """Call work(index, lane) once for every index in range(count).

    `lane` (0 .. lanes-1) tells which thread runs the call, so that each lane
    can have its own scratch buffers. With one lane, or one chunk, everything
    runs here, in order.
    """
    lanes = min(lanes, count)
    if lanes <= 1:
        for index in range(count):
            work(index, 0)
        return
    _lanes_shared["last"] = time.monotonic()
    chunks = _Chunks(count, work)
    pool = _helper_pool(lanes - 1)
    for lane in range(1, lanes):
        pool.submit(chunks.take, lane)
    chunks.take(0)
    chunks.wait_for_running()


# A product is shared out only above this many multiply-adds (about 0.2 ms
# on one core): handing a chunk to a helper costs some tens of microseconds.
SHARE_OUT_MULTIPLY_ADDS = 10_000_000
# Blocks per lane: one. More blocks would balance the work better when a
# lane starts late, but each block costs a hand-off between Python threads
# (LSTM(128) backward, batch 128, 2 threads: 9.3 ms with four blocks per
# lane, 8.7 ms with one). A lane that has not started when the other finishes
# leaves its block to that one: nobody waits for a thread that is not running.
CHUNKS_PER_LANE = 1


def matmul_over_lanes(a, b):
    """a @ b for 2-D arrays, the result cut into blocks shared out over the lanes.

    For the large products outside a recurrence (the input projection and the
    weight gradients, summed over every time step): with BLAS held to one
    thread they would otherwise use one core of two.  The result is cut along
    its longer side, so each block is itself a large, efficient product; the
    blocks are views (rows of a, columns of b), which BLAS reads in place.
    Small products, and one lane, take the plain path.
    """
    rows, inner = a.shape
    columns = b.shape[1]
    # Only while BLAS runs on one thread: lanes that each call a threaded
    # BLAS would put more threads on the cores than there are cores.
    lanes = lane_count() if blas_is_single_threaded() else 1
    if lanes <= 1 or rows * inner * columns < SHARE_OUT_MULTIPLY_ADDS:
        return a @ b
    out = np.empty((rows, columns), dtype=np.result_type(a, b))
    along_rows = rows >= columns
    length = rows if along_rows else columns
    chunk_count = max(1, min(lanes * CHUNKS_PER_LANE, length // 16))
    bounds = [length * index // chunk_count for index in range(chunk_count + 1)]

    def multiply_block(index, lane):
        block = slice(bounds[index], bounds[index + 1])
        if along_rows:
            np.matmul(a[block], b, out=out[block])
        else:
            np.matmul(a, b[:, block], out=out[:, block])

    for_each_chunk(chunk_count, multiply_block, lanes)
    return out


# A product called between the kernels (a Dense layer's) gets BLAS's own
# threads from this many multiply-adds (about 80 us on one core).  Below it,
# meeting the BLAS threads costs about what the second core saves.
BLAS_THREADS_MULTIPLY_ADDS = 4_000_000
# After a threaded product, OpenBLAS's workers keep spinning, each on a core,
# for about 0.1 s (measured: a process asleep for 0.2 s right after one used
# 0.10 s of CPU).  Products get BLAS's threads only when no kernel has shared
# work out over the lanes for longer than this.
LANES_QUIET_SECONDS = 0.5
# How long products stay on one thread after BLAS_THREADS_SLOW_IN_A_ROW
# threaded ones in a row took more than BLAS_THREADS_SLOW_FACTOR times the
# same product on one thread.  A threaded W1 product takes about half of one
# thread's time; on a busy machine 20 to 100 times it; a short hiccup of the
# host took three in a row to 1-3 times (measured), which a factor of 1 took
# for a busy machine and paused the threads for nothing.
BLAS_THREADS_PAUSE_SECONDS = 10.0
BLAS_THREADS_SLOW_IN_A_ROW = 3
BLAS_THREADS_SLOW_FACTOR = 4.0
# The yardstick of a product shape: the fastest of its first few products on
# one thread (one timing alone could be a hiccup, and too slow a yardstick
# would let a busy machine go unnoticed).
YARDSTICK_PRODUCTS = 3

_blas_threads = {"paused_until": float("-inf"), "slow_in_a_row": 0, "one_thread_seconds": {}}


def matmul_on_every_lane(a, b):
    """a @ b for 2-D arrays, on as many BLAS threads as there are lanes while that pays.

    A Dense layer's products sit alone between short Numba loops, with nothing
    for the lanes to share out.  W1's two (128 x 784 by 784 x 128) take 262 us
    each on one core, and a helper lane cannot join in time: a sleeping Python
    thread takes about 100 us to wake on a 2-vCPU virtual machine.  OpenBLAS's
    own workers spin between products instead of sleeping, so within a
    training step they start at once: 130-150 us for the same product on two
    threads.  So BLAS gets the lanes' threads for this one call, and is held
    to one thread again after it.  Three guards (benchmarks/NOTES.md, "Fourth
    round"):

    - Spinning workers take the core from lanes.  After each threaded product
      they spin for about 0.1 s; in W2 (convolutions sharing their batch over
      the lanes) that took the step from 21 to 31 ms.  So while any kernel has
      shared work over the lanes lately, the product is shared over the lanes
      as well (`matmul_over_lanes`, for large products only).
    - A busy machine.  OpenBLAS splits a product into fixed parts, one per
      thread; when the other core is taken, the product waits for a worker
      that is not running (W1's step went from 1.1 to 5-26 ms with two busy
      processes beside it).  So each product shape is first timed on one
      thread (YARDSTICK_PRODUCTS times, the fastest counts), and threaded
      products several times slower than that, a few in a row, pause BLAS's
      threads for BLAS_THREADS_PAUSE_SECONDS.
    - BLAS not held to one thread by `blas_on_one_thread()` (outside
      `kernel_threads()`): left alone.

    Never call this from inside a lane.
    """
    rows, inner = a.shape
    columns = b.shape[1]
    if rows * inner * columns < BLAS_THREADS_MULTIPLY_ADDS:
        return a @ b  # decided first: the checks below cost a few microseconds
    if time.monotonic() - _lanes_shared["last"] < LANES_QUIET_SECONDS:
        return matmul_over_lanes(a, b)  # the lanes are at work in this model
    if not _blas_threads_may_help():
        return a @ b
    shape = (rows, inner, columns)
    if len(_blas_threads["one_thread_seconds"].get(shape, ())) < YARDSTICK_PRODUCTS:
        return _timed_on_one_thread(a, b, shape)
    return _on_blas_threads(a, b, shape)


def _blas_threads_may_help():
    """More than one lane, BLAS held to one thread by blas_on_one_thread(), and no
    pause running."""
    return _held["lanes"] > 1 and time.monotonic() >= _blas_threads["paused_until"]


def _timed_on_one_thread(a, b, shape):
    """One of the first products of a shape, on one thread, timed: the fastest of
    them is the yardstick for the threaded ones."""
    started = time.perf_counter()
    product = a @ b
    _blas_threads["one_thread_seconds"].setdefault(shape, []).append(
        time.perf_counter() - started)
    return product


def _on_blas_threads(a, b, shape):
    """a @ b on lane_count() BLAS threads, then BLAS back on one; far slower than
    the yardstick BLAS_THREADS_SLOW_IN_A_ROW times in a row, BLAS's threads pause."""
    controllers = _blas_controllers()
    for controller in controllers:
        controller.set_num_threads(_held["lanes"])
    started = time.perf_counter()
    try:
        product = a @ b
    finally:
        for controller in controllers:
            controller.set_num_threads(1)
    yardstick = min(_blas_threads["one_thread_seconds"][shape])
    if time.perf_counter() - started <= BLAS_THREADS_SLOW_FACTOR * yardstick:
        _blas_threads["slow_in_a_row"] = 0
    else:
        _blas_threads["slow_in_a_row"] += 1
        if _blas_threads["slow_in_a_row"] >= BLAS_THREADS_SLOW_IN_A_ROW:
            _blas_threads["slow_in_a_row"] = 0
            _blas_threads["paused_until"] = time.monotonic() + BLAS_THREADS_PAUSE_SECONDS
    return product
