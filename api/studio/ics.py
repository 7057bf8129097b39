"""iCalendar (RFC 5545) text: escaped TEXT values, folded content lines, CRLF line endings. Pure functions.

Only what the studio's feed needs: one VCALENDAR of VEVENTs with UTC times. Every content line is folded at 75
octets (UTF-8), never inside a character; continuation lines start with one space (RFC 5545 3.1).
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

CRLF = "\r\n"
MAX_LINE_OCTETS = 75
PRODID = "-//content-pipeline//studio calendar//EN"

# TEXT values may hold no control characters but HTAB (RFC 5545 3.3.11); line breaks are escaped before this.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_text(value: str) -> str:
    """A TEXT property value: backslash, semicolon and comma escaped, every line break as `\\n`, other control
    characters dropped."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return _CONTROL.sub("", value)


def fold(line: str) -> str:
    """One content line folded to at most 75 octets a line, continuations starting with a space; no CRLF at the
    end."""
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for char in line:
        octets = len(char.encode("utf-8"))
        if size + octets > MAX_LINE_OCTETS:
            parts.append("".join(current))
            current, size = [" "], 1
        current.append(char)
        size += octets
    parts.append("".join(current))
    return CRLF.join(parts)


def utc_stamp(moment: datetime) -> str:
    """A DATE-TIME in UTC: `YYYYMMDDTHHMMSSZ` (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class Event:
    uid: str
    start: datetime
    summary: str
    description: str
    status: str  # CONFIRMED, TENTATIVE or CANCELLED
    duration: str = "PT15M"
    url: str = ""


def calendar(name: str, events: Iterable[Event], stamp: datetime) -> str:
    """The whole VCALENDAR, CRLF after every line (the last one too)."""
    lines: list[str] = [
        "BEGIN:VCALENDAR",
        f"PRODID:{PRODID}",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape_text(name)}",
    ]
    for event in events:
        lines.extend(event_lines(event, stamp))
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + CRLF for line in lines)


def event_lines(event: Event, stamp: datetime) -> Sequence[str]:
    lines = [
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{utc_stamp(stamp)}",
        f"DTSTART:{utc_stamp(event.start)}",
        f"DURATION:{event.duration}",
        f"SUMMARY:{escape_text(event.summary)}",
        f"DESCRIPTION:{escape_text(event.description)}",
        f"STATUS:{event.status}",
        "TRANSP:TRANSPARENT",
    ]
    if event.url:
        lines.append(f"URL:{event.url}")
    lines.append("END:VEVENT")
    return lines
