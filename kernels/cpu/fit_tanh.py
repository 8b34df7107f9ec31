"""Where the coefficients of `rnn.tanh_float32` come from.

    python -m deepbreadth.kernels.cpu.fit_tanh

tanh is odd and flattens to +-1, so on [-9, 9] it is written as

    tanh(x) = x * P(x^2) / Q(x^2),   P and Q of degree 4, Q(0) = 1,

and outside that range it is +-1 (float32 cannot tell tanh(9) from 1).  The
ten coefficients are fitted by least squares on the *relative* error: the
equation x P(s) - tanh(x) Q(s) = 0 is linear in the coefficients, and
re-weighting each point by 1 / (tanh(x) Q(s)) from the previous round turns
it into the relative error of the quotient (a few rounds suffice).

The fitted quotient is within 3e-8 of tanh (relative) with exact
coefficients, and within 4e-7 (about 3 float32 units in the last place) when
evaluated in float32, which is what the kernels do.  `tests/kernels/
test_rnn_kernels.py` checks that bound on a fine grid.
"""
import numpy as np

RANGE = 9.0
DEGREE = 4


def fit(rounds=30, points=20000):
    """(p, q): float64 coefficients of P and Q, lowest degree first, q[0] = 1."""
    # Points crowd towards 0 and 9 like Chebyshev nodes, where the error peaks.
    x = np.cos(np.linspace(0.0, np.pi / 2, points)) * RANGE
    x = x[x > 1e-4]
    s = x * x
    t = np.tanh(x)
    powers = s[:, None] ** np.arange(DEGREE + 1)
    q_values = np.ones_like(x)
    for _ in range(rounds):
        # Unknowns: p_0..p_4, q_1..q_4.  x P(s) - t (Q(s) - 1) = t.
        system = np.hstack([x[:, None] * powers, -t[:, None] * powers[:, 1:]])
        weight = 1.0 / (t * q_values)
        solution, *_ = np.linalg.lstsq(system * weight[:, None], t * weight, rcond=None)
        p = solution[: DEGREE + 1]
        q = np.concatenate([[1.0], solution[DEGREE + 1 :]])
        q_values = powers @ q
    return p, q


def relative_error(p, q, dtype):
    """Largest |approximation / tanh - 1| on a fine grid of (0, 9], computed in dtype."""
    x = np.linspace(1e-6, RANGE, 2_000_000).astype(dtype)
    s = x * x
    numerator = np.zeros_like(x)
    denominator = np.zeros_like(x)
    for coefficient in p.astype(dtype)[::-1]:
        numerator = numerator * s + coefficient
    for coefficient in q.astype(dtype)[::-1]:
        denominator = denominator * s + coefficient
    approximation = (x * numerator / denominator).astype(np.float64)
    return np.max(np.abs(approximation / np.tanh(x.astype(np.float64)) - 1.0))


if __name__ == "__main__":
    p, q = fit()
    print("P:", ", ".join(repr(float(np.float32(c))) for c in p))
    print("Q:", ", ".join(repr(float(np.float32(c))) for c in q))
    print(f"relative error: {relative_error(p, q, np.float64):.2e} (float64), "
          f"{relative_error(p, q, np.float32):.2e} (float32)")
