"""Float tolerances for comparisons with fixtures recorded on another machine — the one place they are set.

Masks, indices, class ids and box coordinates copied from the labels are compared exactly, always. Floats that
come out of sums, ``pow``, ``atan``, ``sigmoid`` and softmax are not: torch runs float32 reductions and
vectorised transcendental functions in a different order on another CPU's vector unit (AVX2 vs AVX-512 vs plain
kernels: ``ATEN_CPU_CAPABILITY=default``) and with another number of threads, so the last bits differ. Measured
against the golden fixtures on an AMD EPYC (torch 2.13.0) with AVX512, AVX2 and plain kernels
(``ATEN_CPU_CAPABILITY=default``, 1 or 2 threads), largest difference in any mode:

    overlaps       9.5e-7 abs (5.5e-5 rel where > 1e-3)      target scores  5.3e-6 abs (6.7e-6 rel where > 1e-3)
    align metric   4.1e-6 abs (9.9e-6 rel where > 1e-3)      loss terms     5.2e-7 rel

(plain kernels differ most: glibc's pow/atan instead of SLEEF's). The bounds below leave a margin of about 4×.
On the machine that recorded the fixtures, the same comparisons are bit-identical.

Decisions taken on these floats (top-k picks, the conflict winner, topk2) are compared exactly: in every fixture
the decisive values are far enough apart that these differences cannot flip them (smallest margins: 9.2e-6
relative between the k-th and the next t, where those two values differ by ~1e-6 between modes; 1.9e-3 between
the best and the second CIoU at a contested anchor; 2.8e-3 at a topk2 cut). ``test_golden.py::
test_fixture_decisions_are_not_near_ties`` holds every fixture to DECISION_MARGIN, so a new fixture with a
near-tie is refused instead of becoming a test that fails on some CPUs.
"""

from __future__ import annotations

import numpy as np

# soft target scores, normalised alignment metrics (values in [0, 1])
SCORE = dict(rtol=2e-4, atol=2e-5)
# CIoU overlaps and the alignment metric t = s^alpha * u^beta
OVERLAP = dict(rtol=1e-4, atol=1e-6)
METRIC = dict(rtol=1e-4, atol=1e-7)
# loss terms (means over thousands of anchors)
LOSS = dict(rtol=2e-5, atol=1e-7)
# decoded boxes in pixels (exp/sigmoid of the heads)
PIXELS = dict(rtol=1e-5, atol=1e-4)
# raw head values of a model forward (convolution sums over thousands of terms; measured 2e-6) and its loss
HEADS = dict(rtol=0, atol=1e-4)
MODEL_LOSS = dict(rtol=1e-5, atol=0)
# mask IoU of a (GT, anchor) pair (seg TAL): a ratio of pixel counts, equal to the reference's; the reference
# stores only (CIoU + mask IoU) / 2, so the test recovers its mask IoU as 2 * overlap - CIoU (measured 6e-8 off)
MASK_IOU = dict(rtol=0, atol=2e-6)
# smallest relative gap a fixture's discrete decision must have over the next candidate (see above)
DECISION_MARGIN = 5e-6


def assert_close_f32(actual, expected, kind: dict, what: str = "") -> None:
    """assert_allclose with one of the tolerance sets above (actual/expected: tensors or arrays)."""
    a = actual.detach().cpu().numpy() if hasattr(actual, "detach") else np.asarray(actual)
    e = expected.detach().cpu().numpy() if hasattr(expected, "detach") else np.asarray(expected)
    np.testing.assert_allclose(a, e, err_msg=what, **kind)
# a freshly drawn RealNVP (uniform_ in torch.nn.init): plain kernels round (high - low) * u + low differently in
# the last bit; measured 6.0e-8 abs on values up to 0.71 (pose fixtures, ATEN_CPU_CAPABILITY=default)
FLOW_INIT = dict(rtol=0, atol=2e-7)

# Oriented boxes (tests/test_obb.py; measured the same way on the OBB fixtures). ProbIoU is 1 - sqrt(1 - e^-d):
# for small overlaps the subtraction cancels, so its relative error grows, and t = s^0.5 * u^6 multiplies u's
# relative error by 6. Largest differences in any mode (plain kernels): ProbIoU 1.5e-5 abs (2.4e-5 rel where
# > 1e-3), alignment metric 9.0e-6 abs (1.5e-4 rel), target scores 1.7e-5 abs (1.2e-4 rel), loss terms 1.8e-6 rel.
PROBIOU = dict(rtol=1e-4, atol=4e-6)
ROTATED_METRIC = dict(rtol=6e-4, atol=4e-7)
# the smallest relative gap an OBB fixture's top-k / topk2 cut must have (4x the metric's 1.5e-4)
ROTATED_DECISION_MARGIN = 6e-4
