"""When each social post goes out: the month's days shared evenly among its topics, each platform at its own local hour.

A pure function of its inputs (no clock, no I/O), so the same request always yields the same plan.

| platform | local time | days | why |
| --- | --- | --- | --- |
| LinkedIn | 09:00 | Mon-Fri | read at the start of the working day; quiet at weekends |
| Bluesky | 11:00 | every day | late-morning timeline |
| X | 12:00 | every day | lunch break |
| Facebook | 13:00 | every day | early afternoon |
| Instagram | 18:00 | every day | after work |
| Threads | 19:00 | every day | evening |

Rules:
- Topic `slot` of `slots` gets the middle day of its equal share of the month (4 topics in 30 days: the
  4th, 12th, 19th and 27th). A platform that does not post on that weekday (LinkedIn at the weekend)
  takes the nearest day it does post on in the same month (Saturday -> Friday, Sunday -> Monday).
- The platforms of one topic are staggered by their different hours. Topics that share a day (more
  topics than days, or late ones) are staggered by 10 minutes per slot within the hour (`slot % 6`), so
  no two posts on one platform go out in the same minute; a platform listed twice in one topic adds 3 minutes.
- Nothing before `not_before` + `LEAD_TIME`. When a topic's time has passed but its day has not: the next
  allowed time from its day on. When its day has passed: the topics whose days have passed share, evenly
  again, the days left before the first topic whose day is still ahead (or the rest of the month), so
  that a pipeline started mid-month does not pile its first topics onto one day. When the month is over
  or has no allowed time left: as soon as sensible after it, the first allowed time one day later per
  slot, so that late topics do not all land on the same day either.
- Times are local wall-clock times in the company's time zone through zoneinfo, so they keep their local
  hour across a DST change; results are UTC-aware datetimes.
"""

import calendar
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.enums import Platform

EVERY_DAY = frozenset(range(7))
WORKING_DAYS = frozenset(range(5))  # Monday=0 ... Friday=4


@dataclass(frozen=True)
class PostingWindow:
    at: time  # local wall-clock time
    weekdays: frozenset[int]

    def allows(self, day: date) -> bool:
        return day.weekday() in self.weekdays


PLATFORM_WINDOWS: dict[Platform, PostingWindow] = {
    Platform.LINKEDIN: PostingWindow(time(9, 0), WORKING_DAYS),
    Platform.BLUESKY: PostingWindow(time(11, 0), EVERY_DAY),
    Platform.X: PostingWindow(time(12, 0), EVERY_DAY),
    Platform.FACEBOOK: PostingWindow(time(13, 0), EVERY_DAY),
    Platform.INSTAGRAM: PostingWindow(time(18, 0), EVERY_DAY),
    Platform.THREADS: PostingWindow(time(19, 0), EVERY_DAY),
    Platform.MASTODON: PostingWindow(time(10, 0), EVERY_DAY),
}

LEAD_TIME = timedelta(minutes=10)  # a post is never planned closer than this to `not_before`
TOPIC_LANES = 6  # topics sharing a day take lanes 10 minutes apart, all within the platform's hour
TOPIC_STEP = timedelta(minutes=10)
REPEAT_STEP = timedelta(minutes=3)  # a platform listed twice for one topic
SEARCH_DAYS = 14  # beyond the month an allowed day is always found within a week


def month_bounds(month: str) -> tuple[date, date]:
    """The first and last day of a `YYYY-MM` month."""
    try:
        year_text, month_text = month.split("-")
        if len(year_text) != 4 or len(month_text) != 2:
            raise ValueError
        year, number = int(year_text), int(month_text)
        first = date(year, number, 1)
    except ValueError:
        raise ValueError(f"month must look like 2026-03, got {month!r}") from None
    return first, first.replace(day=calendar.monthrange(year, number)[1])


def share_of_days(slot: int, slots: int, days: int) -> int:
    """The 0-based middle day of slot's equal share of `days` days."""
    return ((2 * slot + 1) * days) // (2 * slots)


def plan_publish_times(
    platforms: Sequence[Platform],
    *,
    slot: int,
    slots: int,
    month: str,
    tz: str | ZoneInfo,
    not_before: datetime,
) -> list[datetime]:
    """A UTC publish time for each platform of topic `slot` (0-based) of `slots`, in the order given."""
    if slots < 1 or not 0 <= slot < slots:
        raise ValueError(f"slot must be in 0..slots-1 with slots >= 1, got slot {slot} of {slots}")
    if not_before.tzinfo is None or not_before.utcoffset() is None:
        raise ValueError("not_before must be timezone-aware")
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    first, last = month_bounds(month)
    plan = _TopicPlan(
        zone=zone,
        first=first,
        last=last,
        slot=slot,
        slots=slots,
        earliest=not_before + LEAD_TIME,
    )
    repeats: Counter[Platform] = Counter()
    times: list[datetime] = []
    for platform in platforms:
        window = PLATFORM_WINDOWS[Platform(platform)]
        offset = TOPIC_STEP * (slot % TOPIC_LANES) + REPEAT_STEP * repeats[platform]
        repeats[platform] += 1
        times.append(plan.place(window, offset).astimezone(UTC))
    return times


@dataclass(frozen=True)
class _TopicPlan:
    zone: ZoneInfo
    first: date
    last: date
    slot: int
    slots: int
    earliest: datetime

    def at(self, day: date, window: PostingWindow, offset: timedelta) -> datetime:
        # A wall time inside a DST gap (none of the windows is, but zones differ) comes out shifted forward.
        return (datetime.combine(day, window.at) + offset).replace(tzinfo=self.zone)

    def fits(self, day: date, window: PostingWindow, offset: timedelta) -> bool:
        return window.allows(day) and self.at(day, window, offset) >= self.earliest

    def nominal_day(self, slot: int) -> date:
        return self.first + timedelta(days=share_of_days(slot, self.slots, (self.last - self.first).days + 1))

    def place(self, window: PostingWindow, offset: timedelta) -> datetime:
        nominal = self.nominal_day(self.slot)
        day = self.nearest_allowed(nominal, window)
        if day is not None and self.at(day, window, offset) >= self.earliest:
            return self.at(day, window, offset)

        start = max(self.first, self.earliest.astimezone(self.zone).date())
        if start <= self.last:
            share = nominal
            if nominal >= start:
                # The topic's day is today or ahead, its time is not: the next day that works.
                found = self.search(nominal, self.last, window, offset)
                if found is not None:
                    return found
            else:
                # Topics whose day has passed share the days left before the first topic still ahead.
                passed = sum(1 for slot in range(self.slots) if self.nominal_day(slot) < start)
                end = self.nominal_day(passed) - timedelta(days=1) if passed < self.slots else self.last
                if end < start:
                    end = self.last
                share = start + timedelta(days=share_of_days(self.slot, passed, (end - start).days + 1))
            found = self.search(share, self.last, window, offset)
            if found is None and share > start:
                found = self.search(share - timedelta(days=1), start, window, offset)
            if found is not None:
                return found

        # The month is over, or nothing in it is left: as soon as sensible, one day per slot.
        begin = max(start, self.last + timedelta(days=1)) + timedelta(days=self.slot)
        found = self.search(begin, begin + timedelta(days=SEARCH_DAYS), window, offset)
        if found is None:  # unreachable with the windows above: each allows a day in every week
            raise ValueError(f"no allowed day for {window} within {SEARCH_DAYS} days of {begin}")
        return found

    def nearest_allowed(self, nominal: date, window: PostingWindow) -> date | None:
        """The day nearest to `nominal` in the month that the window allows; later wins a tie."""
        for distance in range(7):
            for day in (nominal + timedelta(days=distance), nominal - timedelta(days=distance)):
                if self.first <= day <= self.last and window.allows(day):
                    return day
        return None

    def search(self, start: date, stop: date, window: PostingWindow, offset: timedelta) -> datetime | None:
        """The first day from `start` towards `stop` (either direction, both included) that fits."""
        step = timedelta(days=1 if stop >= start else -1)
        day = start
        while True:
            if self.fits(day, window, offset):
                return self.at(day, window, offset)
            if day == stop:
                return None
            day += step
