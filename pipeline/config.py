"""``params.yaml`` -> frozen dataclasses, strictly.

Precedence (documented once, used everywhere): command-line flag > ``params.yaml`` >
dataclass default. Unknown keys are errors that name the file, the section and the
valid keys. Per-plugin settings (``teachers.<name>``, ``students.<name>``) are kept as
plain mappings here and turned into each plugin's own ``config_type`` by
:func:`from_mapping` when the plugin is built.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, TypeVar

import yaml

from pipeline.devices import Device
from pipeline.errors import ConfigError
from pipeline.variants import PAPER_VARIANTS, VARIANT_NAMES, Variant, VariantSpec
from pipeline.variants import VARIANTS as VARIANT_TABLE

C = TypeVar("C")

# One source for every fixed choice: the dataclasses below are annotated with these, so a bad
# value is refused when params.yaml is read (naming the valid ones), and the click options and
# the library's own checks read the same tuples. Open families (teachers, dataset builders,
# store backends by URL) come from their registries instead.

#: ``distill.variant``: the rows of :data:`pipeline.variants.VARIANTS` (their terms, labels and help)
VARIANTS: tuple[Variant, ...] = VARIANT_NAMES
#: ``distill.student``: the registered students (``pipeline.students.STUDENTS`` is checked against it)
StudentName = Literal["mobile_fcn", "cp_resnet"]
STUDENT_NAMES: tuple[str, ...] = typing.get_args(StudentName)
#: ``distill.feature_loss`` (or per teacher, ``distill.teachers[].feature_loss``): the paper's two, bias-corrected
#: linear CKA, and cosine after a learned projection of the student into the teacher's dimension (S-SONDO)
FeatureLoss = Literal["distance_correlation", "cosine_difference", "linear_cka", "cosine_projection"]
FEATURE_LOSSES: tuple[str, ...] = typing.get_args(FeatureLoss)
#: ``distill.dcor_estimator``: the paper's V-statistic or the bias-corrected U-statistic (Székely & Rizzo 2014)
DcorEstimator = Literal["v", "u"]
DCOR_ESTIMATORS: tuple[str, ...] = typing.get_args(DcorEstimator)
#: ``distill.dcor_pool``: one distance correlation per aligned frame (paper) or one over batch x frames
DcorPool = Literal["frame", "batch"]
DCOR_POOLS: tuple[str, ...] = typing.get_args(DcorPool)
#: ``distill.kd_entries``: KD on known labels (+ every class of unlabeled clips; the paper) or every class of every clip
KdEntries = Literal["known", "all"]
KD_ENTRIES: tuple[str, ...] = typing.get_args(KdEntries)
#: ``distill.alignment`` (see :mod:`pipeline.alignment`)
Alignment = Literal["window", "repeat", "nearest"]
ALIGNMENTS: tuple[str, ...] = typing.get_args(Alignment)
#: ``distill.schedule``
Schedule = Literal["onecycle", "plateau"]
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)
#: ``distill.loader``
Loader = Literal["memmap", "store"]
LOADERS: tuple[str, ...] = typing.get_args(Loader)
#: ``extract.backend``: the backends a store can be written with (memmap is an export format)
Backend = Literal["zarr", "hdf5"]
BACKENDS: tuple[str, ...] = typing.get_args(Backend)
#: ``extract.dtype``: frame dtype in a store
FrameDtype = Literal["float16", "float32", "uint8"]
FRAME_DTYPES: tuple[str, ...] = typing.get_args(FrameDtype)

DEFAULT_PARAMS = Path("params.yaml")

#: Settings that change how fast a stage runs or where it runs, never what it writes: they are
#: not DVC params of any stage (dvc.yaml) and not part of a run's recorded configuration.
RUNTIME_KEYS = frozenset({
    "extract.workers", "extract.scheduler", "extract.device", "extract.batch_seconds",
    "distill.device", "distill.threads", "distill.num_workers", "distill.loader",
    "evaluate.batch_size",
})


@dataclass(frozen=True)
class DataConfig:
    """Which dataset the stages work on, and how ``pipeline prepare`` builds it.

    Attributes:
        dataset: builder name (demo, folder, openmic, magnatagatune); ``pipeline prepare``
            without a subcommand runs it.
        audio_root: folder the manifests' relative audio paths start from; the dataset root
            of the folder, openmic and magnatagatune builders; where the demo is rendered.
        manifests: folder holding ``{train,valid,test}.jsonl`` and ``classes.json``.
        render: datasets ``dvc repro`` renders into ``audio_root`` first (``[demo]``; empty
            for audio you bring). Only ``dvc.yaml`` reads it.
        labels: the label file (folder: the CSV; demo: ``<audio_root>/labels.csv``, written by
            the render; openmic/magnatagatune: the dataset's own label file, a DVC dependency).
        classes: folder: class names and order (empty: from the CSV).
        fractions: folder: train/valid/test shares of the random split (no split column).
        seed: folder/magnatagatune: random split seed (null: the builder's default).
        split_dir: openmic/magnatagatune: folder of split lists (empty: the builder's search).
        label_rule: openmic: ``mask`` or ``paper``.
        n_tags: magnatagatune: most frequent tags kept as classes.
        random_split: magnatagatune: seeded 70/15/15 split when there are no split lists.
        unlabeled: folder: a folder under ``audio_root`` whose audio files all join the train
            split as unlabeled clips (no known label; teacher terms only); empty: none.
    """

    dataset: str = "demo"
    audio_root: str = "data/demo"
    manifests: str = "data_manifests/demo"
    render: tuple[str, ...] = ()
    labels: str = ""
    classes: tuple[str, ...] = ()
    fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    seed: Optional[int] = None
    split_dir: str = ""
    label_rule: str = "mask"
    n_tags: int = 50
    random_split: bool = False
    unlabeled: str = ""


@dataclass(frozen=True)
class DemoConfig:
    """Size and shape of the rendered demo set (``pipeline prepare demo``).

    Attributes:
        seed: render seed; the same seed gives bit-identical audio and labels.
        n_train, n_valid, n_test: clips per split.
        clip_seconds: clip length in seconds.
        sample_rate: render rate in Hz.
        min_instruments, max_instruments: instruments per clip.
        unknown_fraction: share of (clip, class) labels marked unknown, as in OpenMIC.
        n_unlabeled: extra train clips rendered the same way but with every label unknown
            (``unlabeled/unlabeled_<i>.flac``); they leave the labelled clips unchanged.
    """

    seed: int = 0
    n_train: int = 600
    n_valid: int = 150
    n_test: int = 300
    clip_seconds: float = 5.0
    sample_rate: int = 16000
    min_instruments: int = 1
    max_instruments: int = 4
    unknown_fraction: float = 0.25
    n_unlabeled: int = 0


@dataclass(frozen=True)
class ViewAugment:
    """The family of augmented views stage one extracts per train clip (``extract.view_augment``).

    Every view draws its parameters from a seeded generator of (``seed``, clip id, view index)
    (:func:`pipeline.views.draw_view`); ranges are kept small (the teacher must still recognise the clip).

    Attributes:
        seed: seed of every view's parameters.
        gain_db: gain uniform in ``[-gain_db, +gain_db]`` dB.
        speed: resample-based speed factor uniform in ``[1 - speed, 1 + speed]``: pitch and tempo change
            together (0.06 is about one semitone); the view keeps the clip's length (cut or zero-padded).
        eq_db: gain of one peaking EQ band, uniform in ``[-eq_db, +eq_db]`` dB.
        eq_hz: the band's center frequency range, Hz (log-uniform).
        eq_q: the band's quality factor.
        mix_probability: share of views mixed with another train clip (mixup on the audio).
        mix_share: range of the clip's own share in a mixed view (uniform); the partner gets the rest.
    """

    seed: int = 0
    gain_db: float = 6.0
    speed: float = 0.06
    eq_db: float = 6.0
    eq_hz: tuple[float, ...] = (150.0, 6000.0)
    eq_q: float = 1.0
    mix_probability: float = 0.5
    mix_share: tuple[float, ...] = (0.6, 0.9)

    def __post_init__(self) -> None:
        ok = (self.gain_db >= 0 and 0 <= self.speed < 0.5 and self.eq_db >= 0 and self.eq_q > 0
              and len(self.eq_hz) == 2 and 0 < self.eq_hz[0] <= self.eq_hz[1]
              and 0 <= self.mix_probability <= 1
              and len(self.mix_share) == 2 and 0.5 <= self.mix_share[0] <= self.mix_share[1] <= 1)
        if not ok:
            raise ConfigError(f"extract.view_augment out of range: {self}; need gain_db, eq_db >= 0, "
                              "0 <= speed < 0.5, eq_q > 0, eq_hz [low, high] > 0, 0 <= mix_probability <= 1, "
                              "0.5 <= mix_share[0] <= mix_share[1] <= 1")


@dataclass(frozen=True)
class ExtractConfig:
    """Stage one settings (``pipeline extract``).

    Attributes:
        store_root: folder holding one store per teacher (``<store_root>/<teacher>``).
        backend: ``zarr`` (default) or ``hdf5``.
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda``.
        batch_seconds: audio seconds of teacher windows per forward pass.
        workers: dask worker processes (local cluster); 0 runs in-process.
        scheduler: address of an existing dask scheduler (``tcp://host:8786``) or empty.
        dtype: frame dtype in the store: ``float16`` (default), ``float32``, or ``uint8`` (8-bit
            codes with a per-part, per-dimension scale and shift; readers return float32).
        cache_audio: also keep decoded, resampled int16 audio in an audio store.
        audio_sample_rate: rate of the cached audio in Hz (the students' rate).
        part_tracks: a writer commits a part after this many tracks.
        splits: which manifest splits to extract.
        views: augmented views per train clip (tracks ``<clip>#v1 .. #vK``, :mod:`pipeline.views`); 0 = none.
        view_augment: the views' augmentation family and its ranges.
    """

    store_root: str = "stores"
    backend: Backend = "zarr"
    device: Device = "auto"
    batch_seconds: float = 120.0
    workers: int = 2
    scheduler: str = ""
    dtype: FrameDtype = "float16"
    cache_audio: bool = True
    audio_sample_rate: int = 16000
    part_tracks: int = 256
    splits: tuple[str, ...] = ("train", "valid", "test")
    views: int = 0
    view_augment: ViewAugment = field(default_factory=ViewAugment)

    def __post_init__(self) -> None:
        if self.views < 0:
            raise ConfigError(f"extract.views must be >= 0 (augmented views per train clip), got {self.views}")


@dataclass(frozen=True)
class ProbeConfig:
    """Linear probe on time-pooled teacher embeddings (paper section 4.7).

    Attributes:
        lr: Adam learning rate (full batch).
        steps: maximum optimisation steps.
        weight_decays: candidates, picked on validation mAP.
        seed: initialisation seed.
        runs_root: folder for ``probe-<teacher>`` runs.
    """

    lr: float = 0.01
    steps: int = 400
    weight_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 3e-2)
    seed: int = 0
    runs_root: str = "runs"


@dataclass(frozen=True)
class TeacherRef:
    """One teacher of a multi-teacher run (``distill.teachers``): a name and its weight.

    In ``params.yaml`` an entry is a name (weight 1) or ``{name: ..., weight: ..., feature_loss: ...}``;
    ``feature_loss`` (None: ``distill.feature_loss``) chooses this teacher's feature term.
    """

    name: str
    weight: float = 1.0
    feature_loss: Optional[FeatureLoss] = None


@dataclass(frozen=True)
class DistillConfig:
    """Stage two settings (``pipeline distill``); departures from the paper: docs/method.md.

    Attributes:
        student: student name (``mobile_fcn`` or ``cp_resnet``).
        teacher: teacher whose store regularises the student.
        teachers: several teachers at once (overrides ``teacher``): the feature term is the
            weighted mean of the per-teacher terms; empty = ``teacher`` alone.
        kd_teacher: whose probe gives the KD targets; "" = the mean of every teacher's probe logits.
        variant: ``baseline``, ``east-final``, ``east-kd`` or ``pretrain`` (teacher terms only, on every
            train clip; labels are never read).
        feature_loss: ``distance_correlation``, ``cosine_difference``, ``linear_cka`` (1 - bias-corrected
            linear CKA) or ``cosine_projection`` (1 - cos(P s, t), P a learned linear map into the
            teacher's dimension); a teacher's own ``feature_loss`` in ``teachers`` wins.
        dcor_estimator: ``v`` (the paper's V-statistic) or ``u`` (bias-corrected, about 0 for
            independent inputs at any batch size).
        dcor_pool: ``frame`` (one estimate per aligned frame, the paper) or ``batch`` (one
            estimate over all batch x frames rows).
        lam: lambda in ``(1 - lam) L_pred + lam L_reg``.
        kd_weight: share of KD inside ``L_reg`` for east-kd and pretrain (paper 0.3). The field's KD
            (EfficientAT, PretrainedSED: 0.1 BCE + 0.9 KD) is ``lam: 0.9, kd_weight: 1.0, tau: 1``.
            A pretrain run with 0 loads no probe.
        tau: KD temperature (paper 2; the field 1).
        kd_entries: ``known`` (the paper: KD on known labels, and every class of unlabeled clips) or
            ``all`` (every class of every clip, as EfficientAT); pretrain always uses every entry.
        init: a run folder whose student weights (``best.pt``) start this run (e.g. a pretrain run);
            "" = random initialisation.
        alignment: ``window`` (average student frames inside each teacher window) or
            ``repeat`` (the paper's repeat-and-truncate).
        epochs, batch_size, lr, weight_decay, grad_clip: optimisation.
        schedule: ``onecycle`` or ``plateau`` (paper: ReduceLROnPlateau).
        patience: early-stopping patience in epochs on validation mAP.
        crop_seconds: training crop length; 0 uses whole clips.
        mixup_alpha: mixup of audio, embeddings and labels (0 disables).
        specaugment: frequency/time masking on the log-mel.
        seed: seed of initialisation, crops and shuffling.
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: mixed precision on CUDA.
        loader: ``memmap`` (a raw copy of the stores under ``.cache/``, made once: fastest) or
            ``store`` (read the Zarr/HDF5 stores directly).
        num_workers: loader worker processes.
        threads: torch threads in the training process; 0 = every core it may use.
        runs_root: folder for run directories.
        unlabeled_per_epoch: unlabeled train clips per epoch: null = all of them; an int k = a
            fresh seeded random subset of k each epoch (all labelled clips every epoch).
        views: train on the stored augmented views (``extract.views``): per clip and epoch a seeded
            draw among the clean clip and its K views; the student hears the same rendered audio
            the teacher embedded (baseline too, for an exact control).
    """

    student: StudentName = "mobile_fcn"
    teacher: str = "musicnn"
    teachers: tuple[TeacherRef, ...] = ()
    kd_teacher: str = ""
    variant: Variant = "east-kd"
    feature_loss: FeatureLoss = "distance_correlation"
    dcor_estimator: DcorEstimator = "v"
    dcor_pool: DcorPool = "frame"
    lam: float = 0.3
    kd_weight: float = 0.3
    tau: float = 2.0
    kd_entries: KdEntries = "known"
    init: str = ""
    alignment: Alignment = "window"
    epochs: int = 12
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    schedule: Schedule = "onecycle"
    patience: int = 15
    crop_seconds: float = 0.0
    mixup_alpha: float = 0.0
    specaugment: bool = False
    seed: int = 0
    device: Device = "auto"
    amp: bool = True
    loader: Loader = "memmap"
    num_workers: int = 0
    threads: int = 0
    runs_root: str = "runs"
    unlabeled_per_epoch: Optional[int] = None
    views: bool = False

    def __post_init__(self) -> None:
        names = [ref.name for ref in self.teachers]
        if len(set(names)) != len(names) or any(not ref.weight > 0 for ref in self.teachers):
            raise ConfigError(f"distill.teachers must name each teacher once, with weights > 0; got "
                              f"{[(ref.name, ref.weight) for ref in self.teachers]}")
        if self.kd_teacher and self.kd_teacher not in [ref.name for ref in self.teacher_refs()]:
            raise ConfigError(f"distill.kd_teacher {self.kd_teacher!r} is not one of the run's teachers "
                              f"({', '.join(ref.name for ref in self.teacher_refs())}); use one of them or \"\"")

    @property
    def spec(self) -> VariantSpec:
        """The row of :data:`pipeline.variants.VARIANTS` that ``variant`` names (its terms and label)."""
        return VARIANT_TABLE[self.variant]

    def teacher_refs(self) -> tuple[TeacherRef, ...]:
        """The run's teachers: ``teachers``, or ``teacher`` with weight 1."""
        return self.teachers or (TeacherRef(self.teacher),)

    def feature_losses(self) -> tuple[str, ...]:
        """The feature loss of each teacher of :meth:`teacher_refs`: its own, else ``feature_loss``."""
        return tuple(ref.feature_loss or self.feature_loss for ref in self.teacher_refs())


@dataclass(frozen=True)
class EvaluateConfig:
    """Evaluation settings.

    Attributes:
        split: manifest split to evaluate on.
        f1_threshold: probability threshold for F1 (paper code: 0.4).
        batch_size: clips per forward pass (keep <= 25 on CPU).
    """

    split: str = "test"
    f1_threshold: float = 0.4
    batch_size: int = 16


@dataclass(frozen=True)
class ReportConfig:
    """Where ``pipeline report`` writes its Markdown and plots."""

    out: str = "reports"


@dataclass(frozen=True)
class Params:
    """Everything in ``params.yaml``.

    ``teachers`` and ``students`` map plugin names to raw settings mappings; build a
    plugin's typed config with :func:`from_mapping` and the plugin's ``config_type``.
    ``variants`` x ``seeds`` are the runs ``dvc.yaml`` trains (``distill@<variant>-<seed>`` into
    ``<distill.runs_root>/<variant>-<seed>``); ``pipeline distill`` alone uses ``distill.seed``.

    Raises:
        ConfigError: ``seeds`` empty, repeated or negative.
    """

    data: DataConfig = field(default_factory=DataConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    teachers_enabled: tuple[str, ...] = ("musicnn",)
    variants: tuple[Variant, ...] = PAPER_VARIANTS
    seeds: tuple[int, ...] = (0,)
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    teachers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    students: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        seeds = list(self.seeds)
        if not seeds or len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct whole numbers >= 0 (one run per variant "
                              f"and seed), got {seeds!r}; e.g. seeds: [0, 1, 2]")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming ``where``."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing), {})  # noqa: S307 - our own annotations
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{where} must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, str) and "name" in {f.name for f in dataclasses.fields(annotation)}:
            value = {"name": value}  # a bare name stands for {name: ...} with the defaults
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return from_mapping(annotation, value, where=where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            value = [value]
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return tuple(_coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping, typing.Mapping) or annotation in (dict, Mapping):
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return {str(k): (dict(v) if isinstance(v, Mapping) else v) for k, v in value.items()}
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if annotation in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            converted = annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
        if annotation is int and isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return converted
    if annotation is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


def from_mapping(cls: type[C], data: Mapping[str, Any] | None, *, where: str = "") -> C:
    """Build the frozen dataclass ``cls`` from ``data``; unknown keys are errors.

    Args:
        cls: a dataclass type.
        data: the mapping read from YAML (``None`` means all defaults).
        where: dotted location used in error messages, e.g. ``params.yaml:distill``.

    Raises:
        ConfigError: an unknown key (the valid keys are listed) or a value of the wrong type.
    """
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} in {where or cls.__name__}; "
            f"valid keys: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(value, hints[name], f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    return cls(**kwargs)


def to_mapping(obj: Any) -> dict[str, Any]:
    """A frozen config as plain YAML/JSON-friendly data (tuples become lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, Mapping):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(obj)


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error when the file is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameter file {str(path)!r} not found; pass --params PATH or run from the project root")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating mappings on the way."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted!r}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def load_params(path: Path | str = DEFAULT_PARAMS, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read ``params.yaml`` with command-line ``overrides`` applied on top.

    Args:
        path: the parameter file.
        overrides: dotted keys (``"distill.epochs"``) -> values; ``None`` values are ignored
            so that unset click options fall through to the file.

    Raises:
        ConfigError: missing file, bad YAML, unknown key or bad value.
    """
    data = read_yaml(path)
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, key, value)
    return from_mapping(Params, data, where=str(path))
