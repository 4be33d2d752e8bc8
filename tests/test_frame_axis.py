"""The frame time axis (pipeline/frame_axis.py) that teachers, stores, the loader and students share."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.frame_axis import FrameAxis

hops = st.sampled_from([0.01, 0.16, 0.5, 0.96, 1.0, 2.992, 1 / 16000])
offsets = st.floats(0.0, 3.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(hop=hops, f0=offsets, n=st.integers(0, 60), t0=st.floats(-5.0, 80.0), span=st.floats(0.0, 30.0))
def test_index_range_holds_exactly_the_frames_centered_in_the_span(
        hop: float, f0: float, n: int, t0: float, span: float) -> None:
    axis = FrameAxis(hop, f0)
    t1 = t0 + span
    i0, i1 = axis.index_range(t0, t1, n)
    centers = axis.times(n)
    inside = [i for i, c in enumerate(centers) if t0 - 1e-6 * hop <= c < t1 - 1e-6 * hop]
    assert list(range(i0, i1)) == inside


@given(hop=hops, f0=offsets, n=st.integers(0, 50), first=st.integers(0, 50))
def test_times_of_a_slice_are_the_slice_of_the_times(hop: float, f0: float, n: int, first: int) -> None:
    axis = FrameAxis(hop, f0)
    np.testing.assert_array_equal(axis.times(n, first), axis.times(first + n)[first:])
    assert axis.times(n).dtype == np.float64


def test_values_by_hand() -> None:
    musicnn = FrameAxis(hop=1.0, frame0_center=1.5, window=3.0)  # 3-s patches every second
    np.testing.assert_allclose(musicnn.times(4), [1.5, 2.5, 3.5, 4.5])
    assert musicnn.index_range(2.0, 5.0, 10) == (1, 4)  # centers 2.5, 3.5 and 4.5
    assert musicnn.index_range(2.0, 4.5, 10) == (1, 3)  # a center on the end is out
    assert musicnn.shift_frames(3.0) == 3 and musicnn.shift_frames(2.9999999) == 3


def test_a_clip_level_axis_has_one_frame_on_the_clip_center() -> None:
    clip = FrameAxis(hop=0.0)
    assert clip.clip_level
    np.testing.assert_array_equal(clip.times(1, clip_seconds=10.0), [5.0])
    assert clip.index_range(3.0, 4.0, 1) == (0, 1) and clip.shift_frames(7.0) == 0
