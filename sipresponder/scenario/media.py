"""A rule's ``media``: what the call's RTP stream does once the rule answered an
INVITE with a 2xx (call/media.py runs it); errors raise ``FieldError``.

    media = "echo"                       # or "tone", "file", "silence", "none"
    media = { mode = "tone", tone = [350, 440], dtmf = "123#", dtmf_after = 1 }
    media = { mode = "file", file = "hello.wav", stop_after = 2 }
"""

from __future__ import annotations

from ..call.media import MODES, MediaPlan, Mode
from ..media.dtmf import DIGITS
from ..media.wav import read_wav
from .fields import FieldError, kind, reject_unknown, string
from .files import FileAccess

MEDIA_KEYS = frozenset({"mode", "tone", "file", "dtmf", "dtmf_after", "stop_after",
                        "payload_type", "loss", "jitter_ms", "start_after"})


def build_media(value: object, files: FileAccess) -> MediaPlan:
    if isinstance(value, str):
        value = {"mode": value}
    if not isinstance(value, dict):
        raise FieldError("media", f'must be a mode ("echo") or a table, not {kind(value)}')
    try:
        return _plan(value, files)
    except FieldError as exc:
        raise exc.within("media") from None


def _plan(raw: dict[str, object], files: FileAccess) -> MediaPlan:
    reject_unknown(raw, MEDIA_KEYS)
    mode = raw.get("mode", "echo")
    if mode not in MODES:
        raise FieldError("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    chosen: Mode = mode
    tone: tuple[float, ...] = (1000.0,)
    if "tone" in raw:
        if chosen != "tone":
            raise FieldError("tone", 'applies to mode = "tone"')
        value = raw["tone"]
        items = value if isinstance(value, list) else [value]
        if not 1 <= len(items) <= 2 or not all(
                isinstance(f, int | float) and not isinstance(f, bool) and 20 <= f <= 3900
                for f in items):
            raise FieldError("tone", "must be a frequency or two (a dual tone), 20-3900 Hz")
        tone = tuple(float(f) for f in items)  # type: ignore[arg-type]
    pcm = b""
    if chosen == "file":
        if "file" not in raw:
            raise FieldError("file", 'mode = "file" needs the WAV file to play')
        name = string("file", raw["file"])
        try:
            pcm = read_wav(files.read("file", name))
        except ValueError as exc:
            raise FieldError("file", str(exc)) from None
        if not pcm:
            raise FieldError("file", f"{name}: no audio in it")
    elif "file" in raw:
        raise FieldError("file", 'applies to mode = "file"')
    digits = ""
    if "dtmf" in raw:
        digits = string("dtmf", raw["dtmf"]).upper()
        if not digits or len(digits) > 64 or any(d not in DIGITS for d in digits):
            raise FieldError("dtmf", f"must be 1-64 of the digits {DIGITS}")
    seconds: dict[str, float | None] = {}
    for key, default in (("dtmf_after", 1.0), ("stop_after", None), ("start_after", 0.0)):
        number = raw.get(key, default)
        if number is not None and (isinstance(number, bool) or not isinstance(
                number, int | float) or not 0 <= number <= 3600):
            raise FieldError(key, "must be a number of seconds from 0 to 3600")
        seconds[key] = float(number) if number is not None else None
    faults = _faults(raw)
    if chosen == "none" and (digits or seconds["stop_after"] is not None or any(
            key in raw for key in ("payload_type", "loss", "jitter_ms", "start_after"))):
        raise FieldError("mode", 'mode = "none" sends nothing: no dtmf, stop_after or'
                                 " faults")
    payload_type, loss, jitter = faults
    return MediaPlan(chosen, tone, pcm, digits, seconds["dtmf_after"] or 0.0,
                     seconds["stop_after"], payload_type, loss, jitter,
                     seconds["start_after"] or 0.0)


def _faults(raw: dict[str, object]) -> tuple[int | None, float, float]:
    """``payload_type`` (0-127), ``loss`` (a share, 0-1) and ``jitter_ms`` (0-1000)."""
    payload_type = raw.get("payload_type")
    if payload_type is not None and (isinstance(payload_type, bool) or not isinstance(
            payload_type, int) or not 0 <= payload_type <= 127):
        raise FieldError("payload_type", "must be an RTP payload type, 0-127")
    loss = raw.get("loss", 0)
    if isinstance(loss, bool) or not isinstance(loss, int | float) or not 0 <= loss <= 1:
        raise FieldError("loss", "must be a share of our packets to drop, from 0 to 1")
    jitter = raw.get("jitter_ms", 0)
    if isinstance(jitter, bool) or not isinstance(jitter, int | float) or not (
            0 <= jitter <= 1000):
        raise FieldError("jitter_ms", "must be milliseconds from 0 to 1000")
    return payload_type, float(loss), float(jitter) / 1000
