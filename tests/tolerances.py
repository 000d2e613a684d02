"""Float tolerances for comparisons with fixtures recorded on another machine — the one place they are set.

Masks, indices, class ids and box coordinates copied from the labels are compared exactly, always. Floats that
come out of sums, ``pow``, ``atan``, ``sigmoid`` and softmax are not: torch runs float32 reductions and
vectorised transcendental functions in a different order on another CPU's vector unit (AVX2 vs AVX-512 vs plain
kernels: ``ATEN_CPU_CAPABILITY=default``) and with another number of threads, so the last bits differ. Measured
against the fixtures (recorded on the fixture machine, compared here on an AMD EPYC with AVX2 and under
``ATEN_CPU_CAPABILITY=default`` with one thread): target scores up to 2.4e-6 absolute / 5.2e-5 relative; losses
up to 4e-7 relative. The bounds below leave a margin of about 4× over those.
On the machine that recorded the fixtures, the same comparisons are bit-identical.
"""

from __future__ import annotations

import numpy as np

# soft target scores, normalised alignment metrics (values in [0, 1])
SCORE = dict(rtol=2e-4, atol=1e-5)
# CIoU overlaps and the alignment metric t = s^alpha * u^beta
OVERLAP = dict(rtol=1e-4, atol=1e-6)
METRIC = dict(rtol=1e-4, atol=1e-7)
# loss terms (means over thousands of anchors)
LOSS = dict(rtol=2e-5, atol=1e-7)
# decoded boxes and raw head values in pixels / logits
PIXELS = dict(rtol=1e-5, atol=1e-4)


def assert_close_f32(actual, expected, kind: dict, what: str = "") -> None:
    """assert_allclose with one of the tolerance sets above (actual/expected: tensors or arrays)."""
    a = actual.detach().cpu().numpy() if hasattr(actual, "detach") else np.asarray(actual)
    e = expected.detach().cpu().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    np.testing.assert_allclose(a, e, err_msg=what, **kind)
