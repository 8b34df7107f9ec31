"""An LSTM's whole forward sequence in one launch (the kernel in rnn_sequence.cu).

rnn.py runs an LSTM forward through it when the shape fits (launch_plan), and
step by step otherwise; the backward pass is always step by step.  Each block owns `units_per_block` units and keeps their
slice of recurrent_kernel in shared memory (rnn_sequence.cu says how); the blocks meet at a grid-wide
barrier after every step, so all of them must be resident at once: at most one
block per multiprocessor, launched cooperatively (loader.COOPERATIVE_FILES).
"""
import collections
import functools

import cupy
import numpy as np

from .loader import get_kernel, index

CUDA_FILE = "rnn_sequence.cu"

# Threads per block: at least this many, so that the whole block stages tiles.
MIN_THREADS = 128
MAX_THREADS = 512
# Must match rnn_sequence.cu: samples each thread multiplies at once, and columns
# of the left matrix staged in shared memory per pass.
SAMPLES_PER_THREAD = 1
STAGED_DEPTH = 64
# Shared memory a kernel gets without asking for more (CUDA's default limit).
DEFAULT_SHARED_BYTES = 48 * 1024

# The tests switch this off to run the step-by-step path on shapes that would fit.
ENABLED = True


@functools.lru_cache(maxsize=None)
def device_limits(device_id):
    """(multiprocessor count, shared memory one block may opt in to) of a GPU."""
    attributes = cupy.cuda.Device(device_id).attributes
    return attributes["MultiProcessorCount"], attributes["MaxSharedMemoryPerBlockOptin"]


LaunchPlan = collections.namedtuple(
    "LaunchPlan", "blocks threads units_per_block groups shared_bytes")


def ceil_div(a, b):
    return -(-a // b)


def launch_plan(batch, units, dtype, samples_per_thread=SAMPLES_PER_THREAD,
                staged_depth=STAGED_DEPTH):
    """The LaunchPlan (blocks, threads, units_per_block, groups, shared_bytes) of
    an LSTM of this shape, or None when the whole-sequence kernel cannot run it
    (switched off, empty, or more shared memory than a block may have).

    A block owns units_per_block units; its threads form `groups` sample groups
    per owned unit (rnn_sequence.cu, "Who does what inside a block").  The last two
    arguments must match the kernels' #defines; they are arguments for the probe of
    benchmarks/gpu_lstm_probe.py, which compiles variants."""
    if not ENABLED or batch == 0 or units == 0:
        return None
    multiprocessors, shared_limit = device_limits(cupy.cuda.Device().id)
    units_per_block = ceil_div(units, multiprocessors)
    blocks = ceil_div(units, units_per_block)
    groups_wanted = ceil_div(batch, samples_per_thread)
    threads = min(MAX_THREADS, max(MIN_THREADS, 32 * ceil_div(groups_wanted * units_per_block, 32)))
    groups = max(1, min(groups_wanted, threads // units_per_block))

    def shared_bytes_for(groups):
        # The block's recurrent weights (units x 4 per owned unit) and the
        # tile of staged rows.
        tile = samples_per_thread * groups * (staged_depth + 1)
        return (units_per_block * 4 * units + tile) * np.dtype(dtype).itemsize

    # Fewer groups make a smaller tile (and more rounds per step).
    while groups > 1 and shared_bytes_for(groups) > shared_limit:
        groups //= 2
    if shared_bytes_for(groups) > shared_limit:
        return None
    return LaunchPlan(blocks, threads, units_per_block, groups, shared_bytes_for(groups))


def launch(kernel, plan, arguments):
    if plan.shared_bytes > DEFAULT_SHARED_BYTES:
        kernel.max_dynamic_shared_size_bytes = plan.shared_bytes
    kernel((plan.blocks,), (plan.threads,), arguments, shared_mem=plan.shared_bytes)


def lstm_forward_sequence(plan, projection, recurrent_kernel, bias, h0, c0,
                          h_seq, c_seq, gates, activation, recurrent_activation):
    """Fills h_seq, c_seq and gates (batch, steps, ...) for all steps in one launch.
    Every array contiguous, of one dtype; activations as integer codes."""
    batch, steps, units = h_seq.shape
    if steps == 0:
        return
    arguments = (projection, recurrent_kernel, bias, h0, c0, h_seq, c_seq, gates,
                 index(batch), index(steps), index(units), index(plan.units_per_block),
                 index(plan.groups), activation, recurrent_activation)
    launch(get_kernel(CUDA_FILE, "lstm_forward_sequence", h_seq.dtype), plan, arguments)
