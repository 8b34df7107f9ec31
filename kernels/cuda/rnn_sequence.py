"""Whole LSTM sequences in one launch each (kernels in rnn_sequence.cu).

rnn.py runs an LSTM through these when the shape fits (launch_plan), and step
by step otherwise.  Each block owns `units_per_block` units and keeps their
slice of recurrent_kernel in shared memory; the blocks meet at a grid-wide
barrier after every step, so all of them must be resident at once: at most one
block per multiprocessor, launched cooperatively (loader.COOPERATIVE_FILES).
"""
import functools

import cupy
import numpy as np

from .loader import get_kernel, index

CUDA_FILE = "rnn_sequence.cu"

# Threads per block: the block's (sample, unit) items, in whole warps, at most this.
MAX_THREADS = 512
# Shared memory a kernel gets without asking for more (CUDA's default limit).
DEFAULT_SHARED_BYTES = 48 * 1024

# A block owns at most this many units: the backward kernel keeps one running
# sum per owned unit in registers (MAX_UNITS_PER_BLOCK in rnn_sequence.cu).
MAX_UNITS_PER_BLOCK = 8

# The tests switch this off to run the step-by-step path on shapes that would fit.
ENABLED = True


@functools.lru_cache(maxsize=None)
def device_limits(device_id):
    """(multiprocessor count, shared memory one block may opt in to) of a GPU."""
    attributes = cupy.cuda.Device(device_id).attributes
    return attributes["MultiProcessorCount"], attributes["MaxSharedMemoryPerBlockOptin"]


def launch_plan(batch, units, dtype):
    """(blocks, threads, units_per_block, shared_bytes) for an LSTM of this shape,
    or None when the whole-sequence kernels cannot run it (switched off, empty,
    more units than MAX_UNITS_PER_BLOCK per multiprocessor, or a block's slice of
    recurrent_kernel larger than its shared memory)."""
    if not ENABLED or batch == 0 or units == 0:
        return None
    multiprocessors, shared_limit = device_limits(cupy.cuda.Device().id)
    units_per_block = -(-units // multiprocessors)
    if units_per_block > MAX_UNITS_PER_BLOCK:
        return None
    blocks = -(-units // units_per_block)
    # Forward: all rows, the block's four gate columns; backward: the block's
    # rows, all 4 * units columns.  The same count either way.
    shared_bytes = units_per_block * 4 * units * np.dtype(dtype).itemsize
    if shared_bytes > shared_limit:
        return None
    threads = min(MAX_THREADS, 32 * -(-(batch * units_per_block) // 32))
    return blocks, threads, units_per_block, shared_bytes


def launch(kernel, plan, arguments):
    blocks, threads, _, shared_bytes = plan
    if shared_bytes > DEFAULT_SHARED_BYTES:
        kernel.max_dynamic_shared_size_bytes = shared_bytes
    kernel((blocks,), (threads,), arguments, shared_mem=shared_bytes)


def lstm_forward_sequence(plan, projection, recurrent_kernel, bias, h0, c0,
                          h_seq, c_seq, gates, activation, recurrent_activation):
    """Fills h_seq, c_seq and gates (batch, steps, ...) for all steps in one launch.
    Every array contiguous, of one dtype; activations as integer codes."""
    batch, steps, units = h_seq.shape
    if steps == 0:
        return
    arguments = (projection, recurrent_kernel, bias, h0, c0, h_seq, c_seq, gates,
                 index(batch), index(steps), index(units), index(plan[2]),
                 activation, recurrent_activation)
    launch(get_kernel(CUDA_FILE, "lstm_forward_sequence", h_seq.dtype), plan, arguments)


def lstm_backward_sequence(plan, recurrent_kernel, c0, c_seq, gates, grad_h_seq,
                           grad_h, grad_c, grad_z_seq, activation, recurrent_activation):
    """Backward through all steps in one launch.  grad_h (zeros) and grad_c
    (grad_c_last) come in as the running gradients and leave as those of h0 and
    c0; grad_z_seq receives the pre-activation gradients of every step."""
    batch, steps, units = c_seq.shape
    if steps == 0:
        return
    arguments = (recurrent_kernel, c0, c_seq, gates, grad_h_seq, grad_h, grad_c, grad_z_seq,
                 index(batch), index(steps), index(units), index(plan[2]),
                 activation, recurrent_activation)
    launch(get_kernel(CUDA_FILE, "lstm_backward_sequence", c_seq.dtype), plan, arguments)
