"""Augmented views of train clips, stored in the teacher's store (issue 18, item 1).

A view ``k`` (1..K) of a train clip is a pure function of the clip's audio, ``k`` and a seed:
:func:`draw_view` turns (seed, clip id, k) into :class:`ViewParams` (gain, resample-based speed,
one peaking EQ band and, for some views, a partner train clip mixed in at a drawn share), and
:func:`render_view` applies them. Stage one embeds each view as its own track ``<clip>#v<k>``
and writes every view's parameters to ``<store>/views.json`` (:class:`ViewTable`); the audio of
a view is never stored. Stage two renders the same parameters from the same base audio, so the
student hears exactly the audio whose teacher frames it is served (View 0 is the clean clip).

The base audio of a view is the clip as the stage-two loader reads it
(:meth:`pipeline.audio_source.AudioSource.read_clip`: the int16 audio cache at ``extract.audio_sample_rate``,
or the file at that rate without a cache), at that rate; stage one resamples the rendered view
to the teacher's rate only when the two differ.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from pipeline.config import ViewAugment, from_mapping, to_mapping
from pipeline.errors import StoreError
from pipeline.files import write_atomic
from pipeline.stores.location import Location

if TYPE_CHECKING:
    from pipeline.manifests import Clip

#: the sidecar of a store's views, next to ``teacher.json``
VIEWS_FILE = "views.json"
VIEWS_VERSION = 1
_VIEW_ID = re.compile(r"^(?P<clip>.+)#v(?P<k>[1-9][0-9]*)$")


class ClipAudio(Protocol):
    """Where a view's base audio comes from (:class:`pipeline.audio_source.AudioSource`)."""

    sample_rate: int

    def read_clip(self, clip: "Clip") -> np.ndarray:
        """The whole clip, float32 ``(samples,)`` at :attr:`sample_rate`."""


def view_track_id(clip_id: str, index: int) -> str:
    """The store track id of view ``index`` (>= 1) of ``clip_id``: ``<clip_id>#v<index>``."""
    if index < 1:
        raise ValueError(f"view indices start at 1 (0 is the clean clip), got {index}")
    return f"{clip_id}#v{index}"


def parse_view_track(track_id: str) -> tuple[str, int] | None:
    """``(clip id, view index)`` of a view track id, or None for a clip's own track."""
    match = _VIEW_ID.match(track_id)
    return (match["clip"], int(match["k"])) if match else None


@dataclass(frozen=True)
class ViewParams:
    """Everything :func:`render_view` needs besides the audio (stored in ``views.json``).

    Attributes:
        clip: the clip id.
        index: view index, >= 1.
        gain_db: gain in dB.
        speed: resample factor (> 1: faster and higher).
        eq_hz, eq_db, eq_q: the peaking EQ band (center Hz, gain dB, quality factor).
        partner: id of the train clip mixed in ("" = none).
        share: the clip's own share of the mix (1.0 without a partner).
    """

    clip: str
    index: int
    gain_db: float
    speed: float
    eq_hz: float
    eq_db: float
    eq_q: float
    partner: str = ""
    share: float = 1.0

    @property
    def track_id(self) -> str:
        return view_track_id(self.clip, self.index)


def _view_rng(seed: int, clip_id: str, index: int) -> np.random.Generator:
    """A generator fixed by (seed, clip id, view index) in any process (no ``hash()`` salt)."""
    digest = hashlib.sha256(f"{seed}\0{clip_id}\0{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_view(clip_id: str, index: int, augment: "ViewAugment", partners: Sequence[str]) -> ViewParams:
    """The parameters of view ``index`` of ``clip_id``: a pure function of its arguments.

    Args:
        clip_id: the clip.
        index: view index, >= 1.
        augment: the family and its ranges (``extract.view_augment``).
        partners: train clip ids a mix may draw its partner from (the clip itself is skipped);
            the order matters, so callers pass them sorted.
    """
    rng = _view_rng(augment.seed, clip_id, index)
    gain = float(rng.uniform(-augment.gain_db, augment.gain_db))
    speed = float(rng.uniform(1.0 - augment.speed, 1.0 + augment.speed))
    low, high = augment.eq_hz
    eq_hz = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    eq_db = float(rng.uniform(-augment.eq_db, augment.eq_db))
    mixed = float(rng.uniform()) < augment.mix_probability
    others = [p for p in partners if p != clip_id]
    partner, share = "", 1.0
    if mixed and others:
        partner = others[int(rng.integers(len(others)))]
        share = float(rng.uniform(augment.mix_share[0], augment.mix_share[1]))
    return ViewParams(clip_id, index, gain, speed, eq_hz, eq_db, float(augment.eq_q), partner, share)


def _fit_length(audio: np.ndarray, n: int, *, loop: bool = False) -> np.ndarray:
    """``audio`` cut or zero-padded (``loop``: repeated) to ``n`` samples."""
    if len(audio) >= n:
        return audio[:n]
    if loop and len(audio):
        return np.resize(audio, n)
    return np.concatenate([audio, np.zeros(n - len(audio), dtype=audio.dtype)])


def _peaking(audio: np.ndarray, sample_rate: int, hz: float, db: float, q: float) -> np.ndarray:
    """One peaking EQ band (RBJ cookbook biquad); a center at or above 0.45 x rate is moved to it."""
    from scipy.signal import lfilter

    w0 = 2.0 * math.pi * min(hz, 0.45 * sample_rate) / sample_rate
    a_gain = 10.0 ** (db / 40.0)
    alpha = math.sin(w0) / (2.0 * q)
    b = [1.0 + alpha * a_gain, -2.0 * math.cos(w0), 1.0 - alpha * a_gain]
    a = [1.0 + alpha / a_gain, -2.0 * math.cos(w0), 1.0 - alpha / a_gain]
    return np.asarray(lfilter(b, a, audio))


def render_view(audio: np.ndarray, sample_rate: int, params: ViewParams,
                partner_audio: np.ndarray | None = None) -> np.ndarray:
    """The view's audio: mix, speed, EQ, gain, in that order, at the clip's length.

    Deterministic: the same inputs give the same bytes (float64 inside; soxr HQ resampling).

    Args:
        audio: the clip, float32 ``(samples,)`` at ``sample_rate``.
        sample_rate: Hz.
        params: the view (:func:`draw_view`).
        partner_audio: the partner clip at ``sample_rate`` (looped or cut to the clip's length);
            required when ``params.partner`` is set.

    Returns:
        float32 ``(samples,)``, as long as ``audio``; not clipped (gain may exceed 1.0).

    Raises:
        ValueError: a partner is named but no partner audio given.
    """
    import soxr

    from pipeline.audio import SOXR_QUALITY

    n = len(audio)
    x = np.asarray(audio, dtype=np.float64)
    if params.partner:
        if partner_audio is None:
            raise ValueError(f"view {params.track_id} mixes in {params.partner!r}: its audio is needed")
        other = _fit_length(np.asarray(partner_audio, dtype=np.float64), n, loop=True)
        x = params.share * x + (1.0 - params.share) * other
    if params.speed != 1.0 and n:
        x = _fit_length(np.asarray(soxr.resample(x, sample_rate * params.speed, sample_rate,
                                                 quality=SOXR_QUALITY), dtype=np.float64), n)
    if params.eq_db != 0.0 and n:
        x = _peaking(x, sample_rate, params.eq_hz, params.eq_db, params.eq_q)
    return (x * 10.0 ** (params.gain_db / 20.0)).astype(np.float32)


def view_labels(clip: "Clip", partner: "Clip | None", share: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels (float32) and known-mask (bool) of a view, by the rule of :func:`pipeline.data.mixup`.

    Without a partner: the clip's own. With one: ``share`` x own + (1 - share) x partner's, unknown
    entries counted as 0, known-masks OR-ed, and all unknown when either clip is unlabeled.
    """
    labels = np.asarray(clip.labels, dtype=np.float32)
    known = np.asarray(clip.known, dtype=bool)
    if partner is None:
        return labels, known
    other = np.asarray(partner.labels, dtype=np.float32)
    other_known = np.asarray(partner.known, dtype=bool)
    mixed = (share * labels * known + (1.0 - share) * other * other_known).astype(np.float32)
    unlabeled = not known.any() or not other_known.any()
    return mixed, (known | other_known) & (not unlabeled)


@dataclass
class ViewTable:
    """A store's views: what ``views.json`` holds.

    Attributes:
        n_views: K, views per train clip.
        sample_rate: rate (Hz) of the base audio the views are rendered from.
        augment: the ``extract.view_augment`` mapping they were drawn with.
        partners: the train clip ids mixes draw partners from (sorted).
        views: track id -> parameters.
    """

    n_views: int
    sample_rate: int
    augment: dict[str, Any]
    partners: list[str]
    views: dict[str, ViewParams] = field(default_factory=dict)

    def to_json(self) -> str:
        """The sidecar's text (sorted, stable)."""
        data = {"version": VIEWS_VERSION, "n_views": self.n_views, "sample_rate": self.sample_rate,
                "augment": self.augment, "partners": self.partners,
                "views": {k: asdict(v) for k, v in sorted(self.views.items())}}
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, *, where: str) -> "ViewTable":
        """Parse ``views.json``; raises StoreError naming ``where`` when it is damaged."""
        try:
            data = json.loads(text)
            if data.get("version") != VIEWS_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {VIEWS_VERSION}")
            views = {k: ViewParams(**v) for k, v in data["views"].items()}
            return cls(int(data["n_views"]), int(data["sample_rate"]), dict(data["augment"]),
                       list(data["partners"]), views)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise StoreError(f"{where} is damaged ({type(exc).__name__}: {exc}); re-extract the views "
                             "(`pipeline extract --overwrite`)") from None

    def indices(self, clip_id: str) -> list[int]:
        """The view indices stored for ``clip_id`` (ascending)."""
        return sorted(p.index for p in self.views.values() if p.clip == clip_id)


def plan_views(train_clips: Sequence["Clip"], n_views: int, augment: "ViewAugment",
               sample_rate: int) -> ViewTable:
    """The table of views 1..``n_views`` of every clip of ``train_clips`` (partners among them)."""
    partners = sorted(c.id for c in train_clips)
    table = ViewTable(n_views, sample_rate, to_mapping(augment), partners)
    for clip in train_clips:
        for index in range(1, n_views + 1):
            params = draw_view(clip.id, index, augment, partners)
            table.views[params.track_id] = params
    return table


def read_view_table(store_path: Path | str) -> ViewTable | None:
    """The ``views.json`` of a store (path or URL), or None when it has none."""
    location = Location(store_path)
    if not location.exists(VIEWS_FILE):
        return None
    return ViewTable.from_json(location.read_text(VIEWS_FILE), where=f"{store_path}/{VIEWS_FILE}")


def write_view_table(store_path: Path, table: ViewTable) -> ViewTable:
    """Merge ``table`` into the store's ``views.json`` (atomic write) and return the merged table.

    Raises:
        StoreError: the store's views were made with other settings (rate, augmentation, partners),
            so the stored view tracks would not match these parameters; ``--overwrite`` starts afresh.
    """
    old = read_view_table(store_path)
    if old is not None:
        if (old.sample_rate, old.augment, old.partners) != (table.sample_rate, table.augment, table.partners):
            raise StoreError(f"{store_path}/{VIEWS_FILE} holds views made with other settings (audio rate, "
                             "extract.view_augment or train clips); restore them or re-extract with --overwrite")
        table = ViewTable(max(old.n_views, table.n_views), table.sample_rate, table.augment, table.partners,
                          {**old.views, **table.views})
    write_atomic(Path(store_path) / VIEWS_FILE, table.to_json(), what="the store's views.json",
                 kept="the store keeps every track committed")
    return table


class ViewRenderer:
    """Renders views of a :class:`ViewTable` from a :class:`ClipAudio` (picklable with it).

    Args:
        table: the store's views.
        audio: the base audio; its rate must be the table's.
        clips: clips by id, the partners among them (for labels and the partners' audio); views of
            other clips are ignored.

    Raises:
        StoreError: the audio source's rate is not the one the views were rendered at; a view of
            one of ``clips`` mixes in a clip not among them.
    """

    def __init__(self, table: ViewTable, audio: ClipAudio, clips: Mapping[str, "Clip"]) -> None:
        if audio.sample_rate != table.sample_rate:
            raise StoreError(f"the store's views were rendered from {table.sample_rate} Hz audio, the student "
                             f"reads {audio.sample_rate} Hz; set extract.audio_sample_rate to the student's rate "
                             "and re-extract the views")
        self.table = table
        self.audio = audio
        self.clips = dict(clips)
        self.indices: dict[str, list[int]] = {}
        for params in table.views.values():
            if params.clip not in self.clips:
                continue
            if params.partner and params.partner not in self.clips:
                raise StoreError(f"view {params.track_id} mixes in {params.partner!r}, which is not among the "
                                 "train clips given; use the train split the views were extracted for")
            self.indices.setdefault(params.clip, []).append(params.index)
        for found in self.indices.values():
            found.sort()

    def render(self, track_id: str) -> np.ndarray:
        """float32 ``(samples,)`` of view ``track_id`` at ``table.sample_rate``."""
        params = self.table.views[track_id]
        base = self.audio.read_clip(self.clips[params.clip])
        partner = self.audio.read_clip(self.clips[params.partner]) if params.partner else None
        return render_view(base, self.table.sample_rate, params, partner)

    def __call__(self, track_id: str, sample_rate: int) -> np.ndarray:
        """The view at ``sample_rate`` (stage one's teacher rate; resampled when it differs)."""
        from pipeline.audio import resample

        return resample(self.render(track_id), self.table.sample_rate, sample_rate)

    def labels(self, track_id: str) -> tuple[np.ndarray, np.ndarray]:
        """Labels and known-mask of a view (:func:`view_labels`)."""
        params = self.table.views[track_id]
        partner = self.clips[params.partner] if params.partner else None
        return view_labels(self.clips[params.clip], partner, params.share)

    def draw(self, clip_id: str, seed: int, epoch: int, index: int) -> str:
        """The track a training item serves: the clip's own (view 0) or one of its views, drawn
        uniformly from (seed, epoch, item index); the same draws for every variant of a study."""
        choices = self.indices.get(clip_id, [])
        if not choices:
            return clip_id
        pick = int(np.random.default_rng((seed, epoch, index, 1)).integers(len(choices) + 1))
        return clip_id if pick == 0 else view_track_id(clip_id, choices[pick - 1])


def verify_views(store: Any) -> tuple[list[str], list[str]]:
    """Problems and notes of a store's views (``([], [])`` without ``views.json``).

    Problems: a damaged sidecar; a stored view track without parameters or without its clip;
    parameters that :func:`draw_view` no longer gives (the sidecar was edited). Notes: planned
    views not extracted yet (a rerun of ``pipeline extract`` adds them).
    """
    try:
        table = read_view_table(store.path)
    except StoreError as exc:
        return [str(exc)], []
    if table is None:
        return [], []
    problems: list[str] = []
    stored = [t for t in store.track_ids() if parse_view_track(t)]
    orphans = [t for t in stored if t not in table.views]
    if orphans:
        problems.append(f"{len(orphans)} view track(s) without parameters in {VIEWS_FILE} (first: {orphans[0]!r})")
    no_clip = [t for t in stored if t in table.views and table.views[t].clip not in store]
    if no_clip:
        problems.append(f"{len(no_clip)} view track(s) whose clip is not stored (first: {no_clip[0]!r})")
    augment = from_mapping(ViewAugment, table.augment, where=f"{VIEWS_FILE}:augment")
    edited = [t for t, p in table.views.items() if draw_view(p.clip, p.index, augment, table.partners) != p]
    if edited:
        problems.append(f"{len(edited)} view(s) whose parameters are not the seeded draw (first: {edited[0]!r})")
    missing = [t for t in table.views if t not in store]
    notes = [f"{len(missing)} planned view(s) not extracted yet; rerun `pipeline extract`"] if missing else []
    return problems, notes
