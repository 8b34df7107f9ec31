"""kernels/cpu/threads.py: sharing work out over lanes gives the same results.

The lanes only change who computes which part; these tests check that every
part is computed once, errors reach the caller, and a product cut into blocks
equals the whole product.  (Whether the lanes pay is a benchmark question.)
"""
import numba
import numpy as np
import pytest
from conftest import lanes

from deepbreadth.kernels.cpu import threads

needs_two_lanes = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2,
    reason="Numba is limited to one thread here (NUMBA_NUM_THREADS); lanes need two",
)


@pytest.fixture
def two_lanes():
    with lanes(2):
        yield


@needs_two_lanes
@pytest.mark.parametrize("count", [1, 2, 3, 17])
def test_every_chunk_runs_exactly_once(two_lanes, count):
    calls = []
    threads.for_each_chunk(count, lambda index, lane: calls.append((index, lane)), lanes=2)
    assert sorted(index for index, _ in calls) == list(range(count))
    assert all(lane in (0, 1) for _, lane in calls)


@needs_two_lanes
def test_an_error_in_a_chunk_reaches_the_caller(two_lanes):
    def work(index, lane):
        if index == 5:
            raise ValueError("chunk 5 failed")

    with pytest.raises(ValueError, match="chunk 5 failed"):
        threads.for_each_chunk(8, work, lanes=2)


@needs_two_lanes
@pytest.mark.parametrize(
    "a_shape, b_shape, transpose_a",
    [
        ((300, 20), (20, 40), False),   # more rows than columns: cut along rows
        ((20, 300), (300, 64), False),  # more columns: cut along columns
        ((50, 70), (50, 90), True),     # a transposed view, as in grad_kernel = x.T @ grad
    ],
)
def test_matmul_over_lanes_equals_the_whole_product(
    two_lanes, monkeypatch, a_shape, b_shape, transpose_a
):
    monkeypatch.setattr(threads, "SHARE_OUT_MULTIPLY_ADDS", 0)  # share out even tiny products
    rng = np.random.default_rng(0)
    a = rng.standard_normal(a_shape)
    a = a.T if transpose_a else a
    b = rng.standard_normal(b_shape)
    blocks = []
    real_for_each_chunk = threads.for_each_chunk
    monkeypatch.setattr(
        threads, "for_each_chunk",
        lambda count, work, lanes: blocks.append(count) or real_for_each_chunk(count, work, lanes),
    )
    with threads.blas_on_one_thread():
        if not threads.blas_is_single_threaded():
            pytest.skip("BLAS cannot be held to one thread here (threadpoolctl is not installed)")
        result = threads.matmul_over_lanes(a, b)
    assert blocks and blocks[0] > 1, "the product was not cut into blocks"
    np.testing.assert_allclose(result, a @ b, rtol=1e-12, atol=1e-12)
    assert result.dtype == np.float64 and result.flags.c_contiguous


def test_matmul_over_lanes_keeps_float32(monkeypatch):
    monkeypatch.setattr(threads, "SHARE_OUT_MULTIPLY_ADDS", 0)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((64, 8)).astype(np.float32)
    b = rng.standard_normal((8, 16)).astype(np.float32)
    with threads.blas_on_one_thread():
        result = threads.matmul_over_lanes(a, b)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, a @ b, rtol=1e-5)


def test_kernel_threads_holds_blas_to_one_thread_under_numba_only():
    import deepbreadth

    if not threads._blas_controllers():
        pytest.skip("threadpoolctl is not installed: BLAS's threads cannot be read or set")
    from threadpoolctl import threadpool_limits

    previous = deepbreadth.get_backend()
    try:
        with threadpool_limits(2, user_api="blas"):
            deepbreadth.set_backend("numba")
            with deepbreadth.kernel_threads():
                assert threads.blas_is_single_threaded()
            assert not threads.blas_is_single_threaded(), "the setting is restored after"
            deepbreadth.set_backend("numpy")
            with deepbreadth.kernel_threads():
                assert not threads.blas_is_single_threaded()
    finally:
        deepbreadth.set_backend(previous)


# --- matmul_on_every_lane: BLAS's own threads for a Dense layer's products ----------


@pytest.fixture
def fresh_guards(monkeypatch):
    """The guards of matmul_on_every_lane as in a fresh process, and every
    product large enough to be offered BLAS's threads."""
    monkeypatch.setattr(threads, "BLAS_THREADS_MULTIPLY_ADDS", 0)
    monkeypatch.setattr(threads, "_blas_threads",
                        {"paused_until": float("-inf"), "slow_in_a_row": 0,
                         "one_thread_seconds": {}})
    monkeypatch.setattr(threads, "_lanes_shared", {"last": float("-inf")})


@pytest.fixture
def blas_threads_spy(two_lanes, fresh_guards, monkeypatch):
    """Fresh guards and a record of the thread counts BLAS is set to (the
    setting itself still happens)."""
    if not threads._blas_controllers():
        pytest.skip("threadpoolctl is not installed: BLAS's threads cannot be read or set")
    settings = []
    for controller in threads._blas_controllers():
        real_set = controller.set_num_threads
        monkeypatch.setattr(controller, "set_num_threads",
                            lambda count, real_set=real_set: settings.append(count) or real_set(count))
    with threads.blas_on_one_thread():
        settings.clear()
        yield settings


def operands(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((40, 30)), rng.standard_normal((30, 20))


@needs_two_lanes
def test_a_product_runs_on_blas_threads_after_a_few_timed_on_one_thread(blas_threads_spy):
    a, b = operands()
    for _ in range(threads.YARDSTICK_PRODUCTS):
        np.testing.assert_allclose(threads.matmul_on_every_lane(a, b), a @ b, rtol=1e-12)
    assert blas_threads_spy == [], "the first products of a shape are the one-thread yardstick"
    assert len(threads._blas_threads["one_thread_seconds"][(40, 30, 20)]) == \
        threads.YARDSTICK_PRODUCTS
    threaded = threads.matmul_on_every_lane(a, b)
    assert blas_threads_spy[0] == 2 and blas_threads_spy[-1] == 1
    assert threads.blas_is_single_threaded(), "BLAS is held to one thread again after"
    np.testing.assert_allclose(threaded, a @ b, rtol=1e-12)


@needs_two_lanes
def test_blas_threads_pause_after_slow_products_in_a_row(blas_threads_spy):
    a, b = operands()
    # A yardstick of zero: every threaded product is slower.
    threads._blas_threads["one_thread_seconds"][(40, 30, 20)] = [0.0] * threads.YARDSTICK_PRODUCTS
    for _ in range(threads.BLAS_THREADS_SLOW_IN_A_ROW):
        threads.matmul_on_every_lane(a, b)
    assert threads._blas_threads["paused_until"] > threads.time.monotonic()
    blas_threads_spy.clear()
    np.testing.assert_allclose(threads.matmul_on_every_lane(a, b), a @ b, rtol=1e-12)
    assert blas_threads_spy == [], "paused: the product stays on one thread"


@needs_two_lanes
def test_while_the_lanes_share_work_products_are_shared_over_them_too(blas_threads_spy,
                                                                     monkeypatch):
    threads.for_each_chunk(4, lambda index, lane: None, lanes=2)
    monkeypatch.setattr(threads, "SHARE_OUT_MULTIPLY_ADDS", 0)
    shared = []
    real_for_each_chunk = threads.for_each_chunk
    monkeypatch.setattr(
        threads, "for_each_chunk",
        lambda count, work, lanes: shared.append(count) or real_for_each_chunk(count, work, lanes))
    a, b = operands()
    for _ in range(3):
        np.testing.assert_allclose(threads.matmul_on_every_lane(a, b), a @ b, rtol=1e-12)
    assert blas_threads_spy == [] and not threads._blas_threads["one_thread_seconds"]
    assert len(shared) == 3 and all(count > 1 for count in shared), "not shared over the lanes"


def test_one_lane_never_touches_blas_threads(fresh_guards):
    with lanes(1):
        a, b = operands()
        with threads.blas_on_one_thread():
            for _ in range(2):
                np.testing.assert_allclose(threads.matmul_on_every_lane(a, b), a @ b,
                                           rtol=1e-12)
    assert not threads._blas_threads["one_thread_seconds"], "one lane: no yardstick, no threads"


@needs_two_lanes
def test_outside_blas_on_one_thread_products_leave_blas_threads_alone(two_lanes, fresh_guards):
    if not threads._blas_controllers():
        pytest.skip("threadpoolctl is not installed: BLAS's threads cannot be read or set")
    from threadpoolctl import threadpool_limits

    a, b = operands()
    # BLAS on one thread, but set by the caller, not held by blas_on_one_thread().
    with threadpool_limits(1, user_api="blas"):
        for _ in range(threads.YARDSTICK_PRODUCTS + 2):
            np.testing.assert_allclose(threads.matmul_on_every_lane(a, b), a @ b, rtol=1e-12)
    assert not threads._blas_threads["one_thread_seconds"], "no yardstick, no threads"
    with threads.blas_on_one_thread():
        assert threads._held["lanes"] == 2, "the lane count is read on entering"
    assert threads._held["lanes"] == 0, "and forgotten on leaving"
