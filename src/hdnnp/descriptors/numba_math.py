"""Elementary functions for the numba kernels: branch-free ``_exp`` and ``_acos`` that LLVM can
vectorise (libm calls cannot be; both agree with libm to ~1 ulp), ``_ipow`` and the kernels'
fastmath flags ``FASTMATH``.

The kernels are compiled with ``fastmath={'reassoc', 'contract'}`` (reassociation for the
vectorised sums, FMA contraction), never with approximate functions or finite-math assumptions.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir as _llvm_ir
from numba import types
from numba.extending import intrinsic

#: fastmath flags of the kernels: reassociation lets LLVM vectorise the sums over partners
FASTMATH = {'reassoc', 'contract'}
_FASTMATH = FASTMATH

@intrinsic
def _f64_from_bits(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llvm_ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def _bits_from_f64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64."""
    if not isinstance(x, types.Float):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], _llvm_ir.IntType(64))

    return types.int64(types.float64), codegen


_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # high part has 32 trailing zero bits: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10


@numba.njit(cache=True, error_model="numpy", inline="always")
def _exp(x):
    """exp(x) for x in [-708, 709] (clamped there), branch-free: Cody-Waite reduction
    x = k ln2 + r, |r| <= ln2/2, Taylor series to r^13 (truncation < 1e-17), scaling by 2^k."""
    x = min(max(x, -708.0), 709.0)
    k = math.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _f64_from_bits((np.int64(k) + 1023) << 52)


# fdlibm e_acos.c
_PIO2_HI = 1.57079632679489655800e+00
_PIO2_LO = 6.12323399573676603587e-17
_PI = 3.14159265358979311600e+00
_PS0, _PS1, _PS2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01
_PS3, _PS4, _PS5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05
_QS1, _QS2 = -2.40339491173441421878e+00, 2.02094576023350569471e+00
_QS3, _QS4 = -6.88283971605453293030e-01, 7.70381505559019352791e-02


@numba.njit(cache=True, error_model="numpy", inline="always")
def _acos(x):
    """acos(x) for x in [-1, 1], fdlibm's algorithm with its three branches evaluated as selects."""
    ax = abs(x)
    small = ax < 0.5
    z = x * x if small else (1.0 - ax) * 0.5
    p = z * (_PS0 + z * (_PS1 + z * (_PS2 + z * (_PS3 + z * (_PS4 + z * _PS5)))))
    q = 1.0 + z * (_QS1 + z * (_QS2 + z * (_QS3 + z * _QS4)))
    r = p / q
    s = math.sqrt(z)
    res_small = _PIO2_HI - (x - (_PIO2_LO - x * r))
    res_neg = _PI - 2.0 * (s + (r * s - _PIO2_LO))
    df = _f64_from_bits(_bits_from_f64(s) & np.int64(-4294967296))  # s with the low 32 bits cleared
    c = (z - df * df) / ((s + df) if z > 0.0 else 1.0)
    res_pos = 2.0 * (df + (r * s + c))
    return res_small if small else (res_neg if x < 0.0 else res_pos)


@numba.njit(cache=True, error_model="numpy", inline="always")
def _ipow(x, n):
    """x**n for integer n >= 0 by squaring."""
    result = 1.0
    while n > 0:
        if n & 1:
            result *= x
        n >>= 1
        x *= x
    return result

