"""Fuzz the input readers on mutated real inputs: only errors of the project's hierarchy may come out.

Targets (each fed mutations of a real file made here, deterministically):

- ``audio_wav`` / ``audio_flac``: :func:`pipeline.audio.audio_info`, :func:`~pipeline.audio.read_audio`
  (resampled) and :func:`~pipeline.audio.iter_blocks` on a rendered instrument clip;
- ``labels_csv``: :func:`pipeline.datasets.folder.build` (``dry_run``) on a labels CSV of real files;
- ``manifest``: :func:`pipeline.manifests.read_manifest` on a JSON-lines manifest.

Mutations are drawn by hypothesis (bit flips, byte overwrites, inserts, deletes, truncation,
duplicated or swapped spans, interesting tokens). A call that returns, or raises a
:class:`~pipeline.errors.PipelineError`, is fine; anything else is a crash, and its input is
saved under ``--crashes`` for a regression test.

Usage::

    nice -n 10 python benchmarks/fuzz_inputs.py --minutes 5 --seed 0 --out benchmarks/results/fuzz_inputs.json

The test suite runs a short seeded slice (``tests/test_fuzz_inputs.py``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TOKENS = [b"\x00", b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"NaN", b"1e999", b"-1", b'"', b",", b";", b"\t",
          b"\n", b"\r\n", b"{", b"}", b"[", b"]", b"\xef\xbb\xbf", b"\xc3\x28", b"null", b"../", b"fLaC", b"RIFF",
          b"data", b"fmt ", b"99999999999999999999"]


@dataclass
class TargetStats:
    """Per-target counts: inputs run, accepted (returned), rejected (project error), crashed; distinct crashes."""

    inputs: int = 0
    accepted: int = 0
    rejected: int = 0
    crashed: int = 0
    crashes: list[dict] = field(default_factory=list)


def make_seeds(folder: Path) -> dict[str, bytes]:
    """Real inputs to mutate: a rendered clip as WAV and FLAC, a labels CSV and a manifest."""
    from pipeline.audio import write_audio
    from pipeline.datasets.demo import render_instrument
    from pipeline.manifests import Clip, write_manifest

    audio = render_instrument("piano", seconds=0.4, sample_rate=16000, seed=1)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    write_audio(folder / "audio" / "a.wav", audio, 16000)
    write_audio(folder / "audio" / "b.flac", audio, 16000)
    write_audio(folder / "audio" / "c.wav", audio[: len(audio) // 2], 16000)
    csv = b"file,tags,split\na.wav,piano;drums,train\nb.flac,guitar,valid\nc.wav,piano,test\n"
    clips = [Clip(f"clip{i}", f"{name}", 0.4, 16000, (1, 0, 1), (True, True, False))
             for i, name in enumerate(["a.wav", "b.flac", "c.wav"])]
    write_manifest(folder / "seed.jsonl", clips)
    return {
        "audio_wav": (folder / "audio" / "a.wav").read_bytes(),
        "audio_flac": (folder / "audio" / "b.flac").read_bytes(),
        "labels_csv": csv,
        "manifest": (folder / "seed.jsonl").read_bytes(),
    }


def mutate(data: bytes, draw: Callable) -> bytes:  # noqa: C901 - one branch per mutation kind
    """Apply 1-6 random mutations to ``data`` (``draw`` is hypothesis' ``data.draw``)."""
    from hypothesis import strategies as st

    out = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "byte", "insert", "delete", "truncate", "dup", "token", "swap"]))
        n = len(out)
        at = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte" and n:
            out[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and n:
            del out[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del out[at:]
        elif kind == "dup" and n:
            span = bytes(out[at : at + draw(st.integers(1, 256))])
            out[at:at] = span
        elif kind == "token":
            token = draw(st.sampled_from(TOKENS))
            out[at : at + (len(token) if draw(st.booleans()) else 0)] = token
        elif kind == "swap" and n > 8:
            other = draw(st.integers(0, n - 4))
            out[at : at + 4], out[other : other + 4] = out[other : other + 4], out[at : at + 4]
    return bytes(out)


def run_target(name: str, data: bytes, work: Path) -> None:
    """Feed ``data`` to the reader(s) of target ``name`` (may raise anything: the caller judges)."""
    if name.startswith("audio"):
        from pipeline.audio import audio_info, iter_blocks, read_audio

        path = work / ("x.wav" if name == "audio_wav" else "x.flac")
        path.write_bytes(data)
        audio_info(path)
        read_audio(path, sample_rate=22050)
        for _offset, _block in iter_blocks(path, sample_rate=8000, block_seconds=0.1):
            pass
    elif name == "labels_csv":
        from pipeline.datasets import folder

        path = work / "labels.csv"
        path.write_bytes(data)
        folder.build(root=work / "audio", labels_csv=path, manifests_dir=work / "manifests", dry_run=True)
    elif name == "manifest":
        from pipeline.manifests import read_manifest

        path = work / "x.jsonl"
        path.write_bytes(data)
        read_manifest(path)
    else:  # pragma: no cover
        raise ValueError(name)


def _judge(name: str, data: bytes, work: Path, stats: TargetStats, crashes_dir: Path | None) -> None:
    from pipeline.errors import PipelineError

    stats.inputs += 1
    try:
        run_target(name, data, work)
    except PipelineError:
        stats.rejected += 1
    except Exception as exc:  # noqa: BLE001 - a crash is what we are looking for
        digest = hashlib.sha256(data).hexdigest()[:16]
        where = traceback.extract_tb(exc.__traceback__)[-1]
        crash = {"target": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                 "at": f"{Path(where.filename).name}:{where.lineno}", "input": f"{name}-{digest}.bin"}
        stats.crashed += 1
        kind = (type(exc).__name__, crash["at"])
        if all((c["error"].split(":")[0], c["at"]) != kind for c in stats.crashes):  # one per kind and place
            stats.crashes.append(crash)
        if crashes_dir is not None:
            crashes_dir.mkdir(parents=True, exist_ok=True)
            (crashes_dir / crash["input"]).write_bytes(data)
    else:
        stats.accepted += 1


def _batch(name: str, original: bytes, size: int, batch_seed: int, work: Path, stats: TargetStats,
           crashes_dir: Path | None) -> None:
    """Run ``size`` hypothesis-drawn mutations of ``original`` through target ``name``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    @hypothesis_seed(batch_seed)
    @settings(max_examples=size, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data) -> None:  # noqa: ANN001
        _judge(name, mutate(original, data.draw), work, stats, crashes_dir)

    one()


def campaign(*, seconds: float | None, examples: int, seed: int, crashes_dir: Path | None = None,
             batch: int = 200) -> dict:
    """Fuzz every target round-robin in batches of ``batch`` hypothesis examples.

    Stops after ``seconds`` (when given) or once each target ran ``examples`` inputs.

    Returns:
        JSON-able results: per-target counts and crashes, totals, seed and wall time.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the readers' warnings about bad files are expected here
    try:
        return _campaign(seconds=seconds, examples=examples, seed=seed, crashes_dir=crashes_dir, batch=batch)
    finally:
        logging.disable(previous)


def _campaign(*, seconds: float | None, examples: int, seed: int, crashes_dir: Path | None, batch: int) -> dict:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        work = Path(tmp)
        seeds = make_seeds(work)
        stats = {name: TargetStats() for name in seeds}
        round_no = 0
        while True:
            for name, original in seeds.items():
                size = batch if seconds is not None else min(batch, examples - stats[name].inputs)
                if size <= 0:
                    continue

                _batch(name, original, size, seed * 100_003 + round_no, work, stats[name], crashes_dir)
            round_no += 1
            elapsed = time.perf_counter() - started
            if seconds is not None and elapsed >= seconds:
                break
            if seconds is None and all(s.inputs >= examples for s in stats.values()):
                break
    elapsed = time.perf_counter() - started
    return {
        "seed": seed,
        "minutes": elapsed / 60,
        "inputs": sum(s.inputs for s in stats.values()),
        "crashed_inputs": sum(s.crashed for s in stats.values()),
        "crashes": sum(len(s.crashes) for s in stats.values()),
        "targets": {name: {"inputs": s.inputs, "accepted": s.accepted, "rejected": s.rejected,
                           "crashed": s.crashed, "crashes": s.crashes} for name, s in stats.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to fuzz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fuzz_inputs.json"))
    parser.add_argument("--crashes", type=Path, default=Path("benchmarks/results/fuzz_crashes"),
                        help="folder for the inputs that crashed")
    args = parser.parse_args()
    results = campaign(seconds=args.minutes * 60, examples=0, seed=args.seed, crashes_dir=args.crashes)
    results["command"] = f"python benchmarks/fuzz_inputs.py --minutes {args.minutes:g} --seed {args.seed}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['inputs']} inputs in {results['minutes']:.1f} min, {results['crashes']} distinct crash(es)"
          f" -> {args.out}")
    for target in results["targets"].values():
        for crash in target["crashes"]:
            print(f"  {crash['target']}: {crash['error']} at {crash['at']} ({crash['input']})")


if __name__ == "__main__":
    main()
