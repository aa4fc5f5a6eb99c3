"""A rule's `media` key (scenario/media.py): its forms, and a one-line refusal for
every value that cannot be played."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sipresponder.media.tones import tone
from sipresponder.media.wav import write_wav
from sipresponder.scenario.loader import ScenarioError, load_scenario, parse_scenario


def rule(media: str) -> str:
    return f'[[rule]]\nmatch = {{ method = "INVITE" }}\ncode = 200\nmedia = {media}\n'


def test_the_forms_of_media(tmp_path: Path) -> None:
    assert parse_scenario(rule('"echo"')).rules[0].media.mode == "echo"  # type: ignore[union-attr]
    plan = parse_scenario(rule('{ mode = "tone", tone = [350, 440], dtmf = "12#a", '
                               "dtmf_after = 2, stop_after = 30, loss = 0.1, "
                               "jitter_ms = 40, payload_type = 18, start_after = 1 }")
                          ).rules[0].media
    assert plan is not None and plan.tone == (350.0, 440.0) and plan.send_dtmf == "12#A"
    assert (plan.loss, plan.jitter, plan.payload_type, plan.start_after) == (0.1, 0.04, 18, 1.0)
    (tmp_path / "hello.wav").write_bytes(write_wav(tone(440.0, 0.1)))
    (tmp_path / "s.toml").write_text(rule('{ mode = "file", file = "hello.wav" }'))
    played = load_scenario(tmp_path / "s.toml").rules[0].media
    assert played is not None and len(played.pcm) == 1600
    assert parse_scenario(rule('"echo"')).rules[0].acts


@pytest.mark.parametrize(("media", "error"), [
    ('"music"', "media.mode: must be one of echo, tone, file, silence, none"),
    ('{ mode = "tone", tone = 5 }', "media.tone: must be a frequency or two"),
    ('{ mode = "echo", tone = 440 }', 'media.tone: applies to mode = "tone"'),
    ('{ mode = "file" }', 'media.file: mode = "file" needs the WAV file'),
    ('{ mode = "tone", dtmf = "12x" }', "media.dtmf: must be 1-64 of the digits"),
    ('{ mode = "tone", loss = 2 }', "media.loss: must be a share"),
    ('{ mode = "tone", payload_type = 200 }', "media.payload_type: must be an RTP payload"),
    ('{ mode = "none", dtmf = "1" }', 'media.mode: mode = "none" sends nothing'),
    ('{ mode = "echo", colour = 1 }', "media.colour: unknown key"),
    ("3", 'media: must be a mode ("echo") or a table'),
])
def test_a_media_that_cannot_be_played_is_refused_in_one_line(media: str, error: str) -> None:
    field, _, message = error.partition(": ")
    with pytest.raises(ScenarioError, match=re.escape(f"field '{field}': {message}")):
        parse_scenario(rule(media))


def test_a_file_that_is_no_wav_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_bytes(b"not a wav at all")
    (tmp_path / "s.toml").write_text(rule('{ mode = "file", file = "notes.wav" }'))
    with pytest.raises(ScenarioError, match=r"'media\.file': .*RIFF"):
        load_scenario(tmp_path / "s.toml")
