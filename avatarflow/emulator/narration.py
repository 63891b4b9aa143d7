"""What an input says and how long saying it takes.

The service's real timing is unknown offline, so the emulator models it: 150 words per
minute (an ideographic character counts as 0.6 of a word), SSML ``<break>`` pauses
honoured, at least one second per video. Video length, subtitles and billing all come
from this one model so they agree with each other; the narration audio is fitted to it.
Prosody rate and ``mstts`` extensions are not modelled.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

SECONDS_PER_WORD = 60.0 / 150.0
MIN_SECONDS = 1.0
MAX_BREAK_SECONDS = 20.0
CUE_MAX_WORDS = 8
GESTURE_PREFIX = "gesture."
# Default break lengths of the SSML strength values (speech service documentation).
BREAK_STRENGTH = {
    "none": 0.0,
    "x-weak": 0.25,
    "weak": 0.5,
    "medium": 0.75,
    "strong": 1.0,
    "x-strong": 1.25,
}
_IDEOGRAPH = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_TOKEN_RE = re.compile(rf"[{_IDEOGRAPH}]|[^\s{_IDEOGRAPH}]+")
_WORDLIKE_RE = re.compile(r"\w")
_SENTENCE_END = (".", "!", "?", "。", "！", "？")


class InvalidSsmlError(ValueError):
    """The SSML of an input cannot be read (the job fails, as on the service)."""


# Small frozen records line up by shape with packing.Member: intended (see ARCHITECTURE).
@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Piece:
    """Spoken ``text``, a ``pause`` in seconds, or a gesture ``mark`` (takes no time)."""

    text: str = ""
    pause: float = 0.0
    mark: str = ""


def _token_weight(token: str) -> float:
    if re.fullmatch(f"[{_IDEOGRAPH}]", token):
        return 0.6
    return 1.0 if _WORDLIKE_RE.search(token) else 0.0


def speaking_seconds(text: str) -> float:
    return sum(_token_weight(t) for t in _TOKEN_RE.findall(text)) * SECONDS_PER_WORD


@dataclass(frozen=True)
class Narration:
    pieces: tuple[Piece, ...]
    voice: str | None
    lang: str

    @property
    def spoken_text(self) -> str:
        return " ".join(p.text for p in self.pieces if p.text)

    @property
    def characters(self) -> int:
        """Billable characters: the spoken text, whitespace collapsed, tags not counted."""
        return len(self.spoken_text)

    @property
    def duration(self) -> float:
        total = sum(speaking_seconds(p.text) + p.pause for p in self.pieces)
        return max(MIN_SECONDS, total)

    def cues(self) -> list[Cue]:
        """Subtitle cues: sentences, cut into chunks of at most ``CUE_MAX_WORDS`` words."""
        cues: list[Cue] = []
        clock = 0.0
        for piece in self.pieces:
            if piece.pause:
                clock += piece.pause
                continue
            for chunk in _chunks(piece.text):
                length = speaking_seconds(chunk)
                if length > 0:
                    cues.append(Cue(clock, clock + length, chunk))
                clock += length
        if cues and clock < MIN_SECONDS:  # the minimum length stretched a short clip
            cues[-1] = Cue(cues[-1].start, self.duration, cues[-1].text)
        return cues

    def gestures(self) -> list[tuple[float, str]]:
        """(time, gesture) of each ``<bookmark mark='gesture.NAME'/>``, on the cues' clock."""
        found: list[tuple[float, str]] = []
        clock = 0.0
        for piece in self.pieces:
            if piece.mark:
                found.append((min(clock, self.duration), piece.mark))
            clock += piece.pause
            for chunk in _chunks(piece.text):
                clock += speaking_seconds(chunk)
        return found

    def espeak_ssml(self) -> str:
        """The narration as the small SSML subset espeak-ng understands."""
        parts: list[str] = []
        for piece in self.pieces:
            if piece.pause:
                parts.append(f'<break time="{round(piece.pause * 1000)}ms"/>')
            elif piece.text:
                parts.append(xml_escape(piece.text))
        return "<speak>" + " ".join(parts) + "</speak>"


def xml_escape(text: str) -> str:
    """``&``, ``<`` and ``>`` as XML (and WebVTT) text must have them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _chunks(text: str) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []
    for word in text.split():
        current.append(word)
        if len(current) >= CUE_MAX_WORDS or word.endswith(_SENTENCE_END):
            chunks.append(" ".join(current))
            current = []
    if current:
        chunks.append(" ".join(current))
    return chunks


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _break_seconds(element: ET.Element) -> float:
    time_text = (element.get("time") or "").strip().lower()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s)", time_text)
    if match:
        value = float(match.group(1)) / (1000.0 if match.group(2) == "ms" else 1.0)
        return min(value, MAX_BREAK_SECONDS)
    return BREAK_STRENGTH.get((element.get("strength") or "medium").lower(), 0.75)


def _collect(element: ET.Element, pieces: list[Piece]) -> None:
    name = _local(element.tag)
    if name == "break":
        pieces.append(Piece(pause=_break_seconds(element)))
    elif name == "bookmark":
        mark = element.get("mark") or ""
        if mark.startswith(GESTURE_PREFIX) and len(mark) > len(GESTURE_PREFIX):
            pieces.append(Piece(mark=mark[len(GESTURE_PREFIX) :]))
    else:
        _add_text(element.text, pieces)
        for child in element:
            _collect(child, pieces)
    # Text after an element belongs to its parent, whatever the element was.
    _add_text(element.tail, pieces)


def _add_text(text: str | None, pieces: list[Piece]) -> None:
    words = " ".join((text or "").split())
    if not words:
        return
    if pieces and pieces[-1].text:
        pieces[-1] = Piece(text=pieces[-1].text + " " + words)
    else:
        pieces.append(Piece(text=words))


def _lang_of(voice: str | None, fallback: str) -> str:
    if voice:
        match = re.match(r"^([a-zA-Z]{2,3}-[a-zA-Z]{2,4})-", voice)
        if match:
            return match.group(1)
    return fallback


def parse_ssml(content: str) -> Narration:
    try:
        root = ET.fromstring(content)
    except ET.ParseError as exc:
        raise InvalidSsmlError(f"The SSML is not well-formed XML: {exc}.") from None
    if _local(root.tag) != "speak":
        raise InvalidSsmlError("The SSML root element must be <speak>.")
    pieces: list[Piece] = []
    _add_text(root.text, pieces)
    for child in root:
        _collect(child, pieces)
    voice = next((el.get("name") for el in root.iter() if _local(el.tag) == "voice"), None)
    lang = root.get("{http://www.w3.org/XML/1998/namespace}lang") or "en-US"
    return Narration(tuple(pieces), voice, _lang_of(voice, lang))


def parse_plain(content: str, voice: str | None) -> Narration:
    text = " ".join(content.split())
    return Narration((Piece(text=text),) if text else (), voice, _lang_of(voice, "en-US"))


def narration_of(content: str, input_kind: str, voice: str | None) -> Narration:
    """The narration of one input; raises :class:`InvalidSsmlError` for unreadable SSML."""
    if input_kind == "SSML":
        return parse_ssml(content)
    return parse_plain(content, voice)


def _stamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def webvtt(cues: list[Cue], *, escaped: bool = False) -> str:
    """A WebVTT file; cue text is escaped (``&``, ``<``, ``>``) unless it already is."""
    lines = ["WEBVTT", ""]
    for cue in cues:
        text = cue.text if escaped else xml_escape(cue.text)
        lines += [f"{_stamp(cue.start, '.')} --> {_stamp(cue.end, '.')}", text, ""]
    return "\n".join(lines)


# An ASS script for ffmpeg's mov_text encoder. Not SRT: ffmpeg reads ``<...>`` in an SRT
# cue as a tag and drops it ("a < b and c > d" loses "< b and c >"), while ASS text is
# literal but for ``\n``/``\N`` (line breaks) and ``{\`` (an override block), which a
# word joiner (U+2060) breaks apart, as ffmpeg's own WebVTT reader does.
_ASS_HEAD = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, \
BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding
Style: Default,Arial,16,&H00FFFFFF,&H00FFFFFF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,\
1,1,0,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""
_ASS_MARKUP_RE = re.compile(r"\\(?=[nNh])|\{(?=\\)")
_WORD_JOINER = "\u2060"


def ass(cues: list[Cue]) -> str:
    """Cues as an ASS script whose text ffmpeg keeps as written (see ``_ASS_HEAD``)."""
    lines = [_ASS_HEAD]
    for cue in cues:
        text = " ".join(cue.text.split())  # one line: ASS breaks lines with \N only
        text = _ASS_MARKUP_RE.sub(lambda m: m.group(0) + _WORD_JOINER, text)
        lines.append(
            f"Dialogue: 0,{_centis(cue.start)},{_centis(cue.end)},Default,,0,0,0,,{text}\n"
        )
    return "".join(lines)


def _centis(seconds: float) -> str:
    """An ASS time, ``HH:MM:SS.cc``: WebVTT's to the hundredth."""
    return _stamp(round(seconds, 2), ".")[:-1]
