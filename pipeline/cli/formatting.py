"""How the commands print the facts they share (one spelling for a frame grid everywhere)."""
from __future__ import annotations


def frame_geometry(hop_seconds: float, window_seconds: float) -> str:
    """``"hop 0.992 s, window 3.008 s"``: seconds to the sample-exact millisecond, trailing zeros dropped."""
    return f"hop {hop_seconds:.6g} s, window {window_seconds:.6g} s"
