"""Musical material for the demo set: OpenMIC's 20 classes played by General MIDI instruments.

Each class maps to one or more GM programs of the small GM SoundFont shipped in the
``pretty_midi`` wheel (``TimGM6mb.sf2``) and a playing style: melodic phrases, chords,
arpeggios, strums, tremolo, sustained choir notes, bass lines, drum grooves and cymbal
patterns. A clip has one key (root, major/minor) and one tempo shared by its instruments.
GM has no mandolin and no ukulele: mandolin is tremolo-picked steel guitar or banjo in a
high register, ukulele is nylon guitar in a high register with short four-note strums.
Drums and cymbals play on the percussion channel (bank 128, one of the SoundFont's kits);
``drums`` uses kick/snare/hi-hat/toms, ``cymbals`` only crash/ride/splash/china.

Rendering uses ``tinysoundfont`` (no system libraries); one synthesizer per process is
loaded once and reset between stems, so output depends only on the seed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

#: The 20 OpenMIC-2018 classes in the dataset's (alphabetical) class-map order.
OPENMIC_CLASSES: tuple[str, ...] = (
    "accordion", "banjo", "bass", "cello", "clarinet", "cymbals", "drums", "flute", "guitar",
    "mallet_percussion", "mandolin", "organ", "piano", "saxophone", "synthesizer", "trombone",
    "trumpet", "ukulele", "violin", "voice",
)

DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)  # TimGM6mb bank-128 presets: standard, room, power, ...
_KICKS, _SNARES = (35, 36), (38, 40, 38, 40, 37)  # 37 (side stick) rarely
_HATS_CLOSED, _HAT_PEDAL, _HAT_OPEN = 42, 44, 46
_TOMS = (41, 43, 45, 47, 48, 50)
_CRASHES, _RIDES, _EXTRA_CYMBALS = (49, 57), (51, 59), (52, 55)
_RIDE_BELL = 53
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class Note:
    """One note: onset and length in seconds, MIDI key, MIDI velocity (1-127)."""

    start: float
    duration: float
    key: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """What one stem plays: the GM preset and its notes."""

    bank: int
    preset: int
    drums: bool
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Context:
    """Shared by the instruments of a clip: key and tempo."""

    root: int  # pitch class 0-11
    minor: bool
    tempo: float  # beats per minute
    seconds: float

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    def scale(self, low: int, high: int) -> list[int]:
        """MIDI keys of the clip's scale within ``[low, high]``."""
        steps = _MINOR if self.minor else _MAJOR
        return [k for k in range(low, high + 1) if (k - self.root) % 12 in steps]

    def chord(self, degree: int, low: int, high: int, size: int = 3) -> list[int]:
        """Keys of the diatonic chord on scale ``degree`` (0-6), stacked from ``low``."""
        steps = _MINOR if self.minor else _MAJOR
        pcs = [(self.root + steps[(degree + 2 * i) % 7]) % 12 for i in range(size)]
        keys: list[int] = []
        base = low
        for pc in pcs:
            key = base + (pc - base) % 12
            keys.append(key)
            base = key + 1
        return [k if k <= high else k - 12 for k in keys]


def draw_context(rng: np.random.Generator, seconds: float) -> Context:
    """A random key (any root, major or minor) and tempo (70-160 BPM)."""
    return Context(root=int(rng.integers(12)), minor=bool(rng.random() < 0.4),
                   tempo=float(rng.uniform(70, 160)), seconds=float(seconds))


def _velocity(rng: np.random.Generator, base: int, jitter: int = 10) -> int:
    return int(np.clip(base + rng.integers(-jitter, jitter + 1), 20, 127))


def _progression(rng: np.random.Generator, bars: int) -> list[int]:
    choices = ([0, 4, 5, 3], [0, 3, 4, 0], [0, 5, 3, 4], [5, 3, 0, 4], [0, 1, 4, 0], [0, 3, 0, 4])
    pattern = choices[int(rng.integers(len(choices)))]
    return [pattern[i % 4] for i in range(bars)]


def _window(rng: np.random.Generator, low: int, high: int, span: int = 14) -> tuple[int, int]:
    """A random sub-register of ``span`` semitones inside ``[low, high]``."""
    if high - low <= span:
        return low, high
    start = int(rng.integers(low, high - span + 1))
    return start, start + span


# --- styles: each returns the notes of one stem -----------------------------------------------

def _melody(ctx: Context, rng: np.random.Generator, low: int, high: int, legato: float = 0.95) -> list[Note]:
    lo, hi = _window(rng, low, high, span=int(rng.integers(10, 17)))
    keys = ctx.scale(lo, hi)
    idx = int(rng.integers(len(keys)))
    base_vel = int(rng.integers(60, 111))
    lengths = np.array([0.5, 1.0, 1.0, 1.5, 2.0, 0.5])
    notes: list[Note] = []
    t, rested = float(rng.uniform(0, 0.25)) * ctx.beat, False
    while t < ctx.seconds:
        dur = float(rng.choice(lengths)) * ctx.beat
        if notes and not rested and rng.random() < 0.1:  # a short rest now and then, never two in a row
            t += min(dur, ctx.beat)
            rested = True
            continue
        rested = False
        notes.append(Note(t, dur * legato, keys[idx], _velocity(rng, base_vel)))
        idx = int(np.clip(idx + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, len(keys) - 1))
        t += dur
    return notes


def _chords(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    lo, hi = _window(rng, low, high, span=19)
    bar = 4 * ctx.beat
    mode = ("block", "pulse", "arpeggio")[int(rng.integers(3))]
    base_vel = int(rng.integers(55, 105))
    notes: list[Note] = []
    for b, degree in enumerate(_progression(rng, int(ctx.seconds / bar) + 1)):
        chord = ctx.chord(degree, lo, hi, size=int(rng.integers(3, 5)))
        t0 = b * bar
        if mode == "block":
            notes += [Note(t0, bar * 0.97, k, _velocity(rng, base_vel, 6)) for k in chord]
        elif mode == "pulse":
            for beat in range(4):
                if beat % 2 == 0 or rng.random() < 0.5:
                    notes += [Note(t0 + beat * ctx.beat, ctx.beat * 0.8, k, _velocity(rng, base_vel, 6))
                              for k in chord]
        else:
            order = chord + chord[1:-1][::-1]
            for i in range(8):
                notes.append(Note(t0 + i * ctx.beat / 2, ctx.beat * 0.9, order[i % len(order)],
                                  _velocity(rng, base_vel)))
    if rng.random() < 0.5:  # a melody on top
        notes += _melody(ctx, rng, min(hi + 1, high), min(hi + 15, 108))
    return [n for n in notes if n.start < ctx.seconds]


def _arpeggio(ctx: Context, rng: np.random.Generator, low: int, high: int, per_beat: int = 2) -> list[Note]:
    lo, hi = _window(rng, low, high, span=17)
    bar = 4 * ctx.beat
    base_vel = int(rng.integers(60, 110))
    step = ctx.beat / per_beat
    notes: list[Note] = []
    for b, degree in enumerate(_progression(rng, int(ctx.seconds / bar) + 1)):
        chord = ctx.chord(degree, lo, hi, size=3)
        pattern = chord + [chord[0] + 12 if chord[0] + 12 <= hi else chord[1]]
        if rng.random() < 0.5:
            pattern = pattern[::-1]
        for i in range(4 * per_beat):
            key = pattern[i % len(pattern)]
            notes.append(Note(b * bar + i * step, step * 1.5, key, _velocity(rng, base_vel)))
    return [n for n in notes if n.start < ctx.seconds]


def _strum(ctx: Context, rng: np.random.Generator, low: int, high: int, *, strings: int = 5,
           short: bool = False) -> list[Note]:
    lo, hi = _window(rng, low, high, span=16)
    bar = 4 * ctx.beat
    base_vel = int(rng.integers(60, 110))
    patterns = ([0, 1, 2, 3], [0, 1.5, 2, 3], [0, 0.5, 1, 2, 2.5, 3, 3.5], [0, 1, 1.5, 2.5, 3])
    pattern = patterns[int(rng.integers(len(patterns)))]
    notes: list[Note] = []
    for b, degree in enumerate(_progression(rng, int(ctx.seconds / bar) + 1)):
        chord = ctx.chord(degree, lo, hi, size=3)
        voicing = sorted((chord + [k + 12 for k in chord if k + 12 <= hi])[:strings])
        for beat in pattern:
            t0 = b * bar + float(beat) * ctx.beat
            down = rng.random() < 0.7
            gap = float(rng.uniform(0.008, 0.025))
            length = ctx.beat * (0.35 if short else 0.9)
            for i, key in enumerate(voicing if down else voicing[::-1]):
                notes.append(Note(t0 + i * gap, length, key, _velocity(rng, base_vel, 8)))
    return [n for n in notes if n.start < ctx.seconds]


def _tremolo(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    rate = float(rng.uniform(11, 16))  # picks per second
    notes: list[Note] = []
    for phrase_note in _melody(ctx, rng, low, high, legato=1.0):
        t = phrase_note.start
        while t < phrase_note.start + phrase_note.duration:
            notes.append(Note(t, 1.0 / rate, phrase_note.key, _velocity(rng, phrase_note.velocity, 12)))
            t += 1.0 / rate
    return [n for n in notes if n.start < ctx.seconds]


def _sustained(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    lo, hi = _window(rng, low, high, span=12)
    bar = 4 * ctx.beat
    voices = int(rng.integers(1, 4))
    base_vel = int(rng.integers(60, 110))
    notes: list[Note] = []
    t = 0.0
    for degree in _progression(rng, int(ctx.seconds / bar) * 2 + 2):
        dur = float(rng.choice([2.0, 3.0, 4.0])) * ctx.beat
        chord = ctx.chord(degree, lo, hi, size=3)
        for key in chord[-voices:]:
            notes.append(Note(t, dur * 0.98, key, _velocity(rng, base_vel, 6)))
        t += dur
        if t >= ctx.seconds:
            break
    return notes


def _bass(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    bar = 4 * ctx.beat
    per_beat = int(rng.choice([1, 1, 2]))
    base_vel = int(rng.integers(70, 115))
    notes: list[Note] = []
    for b, degree in enumerate(_progression(rng, int(ctx.seconds / bar) + 1)):
        root = ctx.chord(degree, low, high, size=1)[0]
        fifth = root + 7 if root + 7 <= high else root - 5
        for i in range(4 * per_beat):
            key = root if i % (2 * per_beat) == 0 or rng.random() < 0.6 else fifth
            notes.append(Note(b * bar + i * ctx.beat / per_beat, ctx.beat / per_beat * 0.9, key,
                              _velocity(rng, base_vel)))
    return [n for n in notes if n.start < ctx.seconds]


def _drums(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    sixteenth = ctx.beat / 4
    hats = int(rng.choice([2, 2, 4]))  # hi-hat strokes per beat
    kick, snare = int(rng.choice(_KICKS)), int(rng.choice(_SNARES))
    base_vel = int(rng.integers(70, 120))
    kick_patterns = ([0, 8], [0, 6, 8], [0, 8, 10], [0, 3, 8, 11])
    kick_pattern = kick_patterns[int(rng.integers(len(kick_patterns)))]
    notes: list[Note] = []
    bars = int(ctx.seconds / (4 * ctx.beat)) + 1
    for b in range(bars):
        t0 = b * 16 * sixteenth
        fill = b == bars - 1 or (b % 4 == 3 and rng.random() < 0.5)
        for s in range(16):
            t = t0 + s * sixteenth
            if s in kick_pattern:
                notes.append(Note(t, sixteenth, kick, _velocity(rng, base_vel)))
            if s in (4, 12):
                notes.append(Note(t, sixteenth, snare, _velocity(rng, base_vel)))
            if fill and s >= 12:
                notes.append(Note(t, sixteenth, int(rng.choice(_TOMS)), _velocity(rng, base_vel)))
            elif s % (4 // hats) == 0:
                hat = _HAT_OPEN if (s == 14 and rng.random() < 0.3) else _HATS_CLOSED
                notes.append(Note(t, sixteenth, hat, _velocity(rng, base_vel - 20)))
            elif rng.random() < 0.05:
                notes.append(Note(t, sixteenth, _HAT_PEDAL, _velocity(rng, base_vel - 30)))
    return [n for n in notes if n.start < ctx.seconds]


def _cymbals(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    ride, crash = int(rng.choice(_RIDES)), int(rng.choice(_CRASHES))
    per_beat = int(rng.choice([1, 2]))
    base_vel = int(rng.integers(70, 120))
    notes: list[Note] = []
    bars = int(ctx.seconds / (4 * ctx.beat)) + 1
    for b in range(bars):
        t0 = b * 4 * ctx.beat
        if b % 2 == 0 or rng.random() < 0.3:
            notes.append(Note(t0, 2 * ctx.beat, crash, _velocity(rng, base_vel + 5)))
        for i in range(4 * per_beat):
            key = _RIDE_BELL if rng.random() < 0.1 else ride
            if rng.random() < 0.05:
                key = int(rng.choice(_EXTRA_CYMBALS))
            notes.append(Note(t0 + i * ctx.beat / per_beat, ctx.beat, key, _velocity(rng, base_vel - 10)))
    return [n for n in notes if n.start < ctx.seconds]


Style = Callable[[Context, np.random.Generator, int, int], list[Note]]


@dataclass(frozen=True)
class Voice:
    """How a class is played: GM presets ``(preset, low key, high key)`` and styles."""

    presets: tuple[tuple[int, int, int], ...]
    styles: tuple[Style, ...]
    drums: bool = False


def _ukulele(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    return _strum(ctx, rng, low, high, strings=4, short=True)


def _guitar(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    return _strum(ctx, rng, low, high, strings=int(rng.integers(4, 7)))


def _banjo_roll(ctx: Context, rng: np.random.Generator, low: int, high: int) -> list[Note]:
    return _arpeggio(ctx, rng, low, high, per_beat=4)


VOICES: dict[str, Voice] = {
    "accordion": Voice(((21, 53, 84), (23, 53, 84)), (_chords, _melody)),
    "banjo": Voice(((105, 55, 84),), (_banjo_roll, _arpeggio)),
    "bass": Voice(((32, 28, 50), (33, 28, 52), (34, 28, 52), (35, 28, 50)), (_bass,)),
    "cello": Voice(((42, 36, 69),), (_melody,)),
    "clarinet": Voice(((71, 50, 86),), (_melody,)),
    "cymbals": Voice(tuple((kit, 0, 127) for kit in DRUM_KITS), (_cymbals,), drums=True),
    "drums": Voice(tuple((kit, 0, 127) for kit in DRUM_KITS), (_drums,), drums=True),
    "flute": Voice(((73, 60, 96),), (_melody,)),
    "guitar": Voice(((24, 40, 76), (25, 40, 76), (26, 40, 79), (27, 40, 79), (29, 40, 76), (30, 40, 76)),
                    (_guitar, _arpeggio, _melody)),
    "mallet_percussion": Voice(((9, 72, 105), (11, 53, 89), (12, 45, 96), (13, 65, 105)),
                               (_arpeggio, _melody)),
    "mandolin": Voice(((25, 67, 91), (105, 67, 91)), (_tremolo,)),
    "organ": Voice(((16, 43, 84), (17, 43, 84), (18, 43, 84), (19, 36, 84)), (_chords,)),
    "piano": Voice(((0, 36, 96), (1, 36, 96), (2, 36, 96)), (_chords, _arpeggio, _melody)),
    "saxophone": Voice(((64, 56, 87), (65, 49, 80), (66, 44, 75), (67, 36, 68)), (_melody,)),
    "synthesizer": Voice(((80, 48, 84), (81, 48, 84), (88, 43, 84), (89, 43, 84), (90, 43, 84)),
                         (_melody, _chords, _arpeggio)),
    "trombone": Voice(((57, 40, 72),), (_melody,)),
    "trumpet": Voice(((56, 55, 82),), (_melody,)),
    "ukulele": Voice(((24, 60, 81),), (_ukulele,)),
    "violin": Voice(((40, 55, 96),), (_melody,)),
    "voice": Voice(((52, 48, 79), (53, 48, 79), (54, 48, 79), (85, 52, 79)), (_sustained,)),
}


def compose(class_name: str, ctx: Context, rng: np.random.Generator) -> Part:
    """Draw the preset and the notes of one ``class_name`` stem."""
    try:
        voice = VOICES[class_name]
    except KeyError:
        raise ValueError(
            f"unknown demo class {class_name!r}; choose one of {', '.join(OPENMIC_CLASSES)}"
        ) from None
    preset, low, high = voice.presets[int(rng.integers(len(voice.presets)))]
    style = voice.styles[int(rng.integers(len(voice.styles)))]
    notes = style(ctx, rng, low, high)
    return Part(bank=128 if voice.drums else 0, preset=preset, drums=voice.drums, notes=tuple(notes))


# --- synthesis -------------------------------------------------------------------------------

_SYNTHS: dict[int, tuple[object, int]] = {}


def soundfont_path() -> str:
    """Path of ``TimGM6mb.sf2`` inside the installed ``pretty_midi`` package."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"GM SoundFont not found at {path}; reinstall pretty_midi (pip install pretty_midi)"
        )
    return path


def _synth(sample_rate: int) -> tuple[object, int]:
    """This process's synthesizer for ``sample_rate`` (SoundFont loaded once)."""
    if sample_rate not in _SYNTHS:
        import tinysoundfont

        synth = tinysoundfont.Synth(samplerate=int(sample_rate))
        _SYNTHS[sample_rate] = (synth, synth.sfload(soundfont_path()))
    return _SYNTHS[sample_rate]


def _generate(synth: object, frames: int) -> np.ndarray:
    """``(frames, 2)`` float32 stereo from the synthesizer."""
    buffer = synth.generate(frames)  # type: ignore[attr-defined]
    return np.frombuffer(buffer, dtype=np.float32).reshape(-1, 2)


def _silence(synth: object) -> None:
    """Stop every voice and run the synthesizer until its fast release has died away.

    ``sounds_off`` still lets voices fade for a few ms, which would leak into the next stem;
    rendering (and discarding) until a block is exactly zero makes every stem independent of
    what was rendered before it in this process.
    """
    synth.sounds_off()  # type: ignore[attr-defined]
    for _ in range(256):
        if not np.any(_generate(synth, 256)):
            return
    raise RuntimeError("the synthesizer did not fall silent after sounds_off()")


def synthesize(part: Part, seconds: float, sample_rate: int) -> np.ndarray:
    """Render one part to ``(round(seconds * sample_rate),)`` float32 mono (channel mean)."""
    synth, sfid = _synth(sample_rate)
    channel = 9 if part.drums else 0
    _silence(synth)
    synth.program_select(channel, sfid, part.bank, part.preset, part.drums)  # type: ignore[attr-defined]
    total = int(round(seconds * sample_rate))
    events: list[tuple[int, int, int, int]] = []  # (sample, order, key, velocity); offs before ons
    for note in part.notes:
        on = int(round(note.start * sample_rate))
        if on >= total:
            continue
        events.append((on, 1, note.key, note.velocity))
        events.append((int(round((note.start + note.duration) * sample_rate)), 0, note.key, 0))
    events.sort()
    out = np.zeros((total, 2), np.float32)
    pos = 0
    for when, kind, key, velocity in events:
        when = min(when, total)
        if when > pos:
            out[pos:when] = _generate(synth, when - pos)
            pos = when
        if when >= total:
            break
        if kind:
            synth.noteon(channel, key, velocity)  # type: ignore[attr-defined]
        else:
            synth.noteoff(channel, key)  # type: ignore[attr-defined]
    if pos < total:
        out[pos:] = _generate(synth, total - pos)
    _silence(synth)
    return out.mean(axis=1).astype(np.float32)
