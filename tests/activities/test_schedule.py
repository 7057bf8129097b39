"""Publish times: the pure planner (spread, local hours, weekends, DST, not_before, month ends) and the
schedule_posts activity that writes them (idempotent) against a real PostgreSQL."""

import itertools
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.schedule import LEAD_TIME, PLATFORM_WINDOWS, month_bounds, plan_publish_times
from models.db import Database
from models.enums import Platform, PublishState
from models.pipeline import ScheduleRequest
from tests.support.publish_rows import make_posts, publish_activities, reload
from tests.support.stack import Tenant

PRAGUE = ZoneInfo("Europe/Prague")
NEW_YORK = ZoneInfo("America/New_York")
LONG_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
ALL = list(Platform)


def local(moment: datetime, zone: ZoneInfo = PRAGUE) -> datetime:
    return moment.astimezone(zone)


def plan(
    platforms: list[Platform],
    slot: int,
    slots: int,
    month: str = "2026-03",
    tz: str = "Europe/Prague",
    not_before: datetime = LONG_BEFORE,
) -> list[datetime]:
    return plan_publish_times(platforms, slot=slot, slots=slots, month=month, tz=tz, not_before=not_before)


def one(platform: Platform, slot: int, slots: int, **kwargs: object) -> datetime:
    return plan([platform], slot, slots, **kwargs)[0]  # type: ignore[arg-type]


def in_month(moment: datetime, month: str, zone: ZoneInfo = PRAGUE) -> bool:
    first, last = month_bounds(month)
    return first <= local(moment, zone).date() <= last


# ---- the plan for a month that lies ahead ---------------------------------------------------------------------


def test_times_are_utc_at_each_platforms_local_hour_inside_the_month() -> None:
    for slot in range(4):
        times = plan(ALL, slot, 4)
        for platform, moment in zip(ALL, times, strict=True):
            assert moment.tzinfo == UTC
            window = PLATFORM_WINDOWS[platform]
            wall = local(moment)
            assert wall.time() == time(window.at.hour, 10 * slot), (platform, wall)
            assert in_month(moment, "2026-03")


def test_topics_share_the_month_evenly() -> None:
    days = [local(one(Platform.X, slot, 4)).day for slot in range(4)]
    assert days == [4, 12, 20, 28]
    assert local(one(Platform.X, 0, 1)).day == 16
    # One topic a day when there are as many topics as days, February included.
    assert [local(one(Platform.X, slot, 31)).day for slot in range(31)] == list(range(1, 32))
    assert [local(one(Platform.X, slot, 28, month="2026-02")).day for slot in range(28)] == list(range(1, 29))
    assert local(one(Platform.X, 27, 28, month="2026-02")).date() == date(2026, 2, 28)  # the last day


def test_linkedin_never_posts_at_the_weekend_and_moves_to_the_nearest_working_day() -> None:
    for month in (f"2026-{m:02d}" for m in range(1, 13)):
        for slots in range(1, 12):
            for slot in range(slots):
                moment = one(Platform.LINKEDIN, slot, slots, month=month)
                assert local(moment).weekday() < 5, (month, slot, slots)
                assert in_month(moment, month)
    # March 2026: the 28th is a Saturday (-> Friday 27th), the 1st and the 29th are Sundays (-> Mondays).
    assert local(one(Platform.LINKEDIN, 27, 31)).date() == date(2026, 3, 27)
    assert local(one(Platform.LINKEDIN, 28, 31)).date() == date(2026, 3, 30)
    assert local(one(Platform.LINKEDIN, 0, 31)).date() == date(2026, 3, 2)
    # The other platforms post at weekends too.
    assert local(one(Platform.INSTAGRAM, 27, 31)).date() == date(2026, 3, 28)


def test_the_platforms_of_one_topic_are_staggered() -> None:
    times = plan(ALL, 2, 4)
    assert len(set(times)) == len(times)
    same_day = sorted(t for p, t in zip(ALL, times, strict=True) if p != Platform.LINKEDIN)
    assert all(b - a >= timedelta(hours=1) for a, b in itertools.pairwise(same_day))
    # A platform listed twice is not posted twice in the same minute.
    twice = plan([Platform.X, Platform.X], 0, 4)
    assert twice[1] - twice[0] == timedelta(minutes=3)


def test_topics_that_share_a_day_do_not_share_a_minute() -> None:
    times = [one(Platform.X, slot, 62) for slot in range(62)]  # two topics a day
    assert len(set(times)) == 62
    by_day: dict[date, list[datetime]] = {}
    for moment in times:
        by_day.setdefault(local(moment).date(), []).append(moment)
    assert len(by_day) == 31 and all(len(v) == 2 for v in by_day.values())


# ---- DST ------------------------------------------------------------------------------------------------------


def test_dst_in_prague_keeps_the_local_hour() -> None:
    # Summer time starts on Sunday 29 March 2026 at 02:00.
    saturday, sunday = one(Platform.X, 27, 31), one(Platform.X, 28, 31)
    assert local(saturday).date() == date(2026, 3, 28) and local(sunday).date() == date(2026, 3, 29)
    assert (local(saturday).hour, local(sunday).hour) == (12, 12)
    assert saturday.hour == 11 and sunday.hour == 10  # UTC+1, then UTC+2
    # And ends on Sunday 25 October 2026.
    before, after = one(Platform.X, 23, 31, month="2026-10"), one(Platform.X, 24, 31, month="2026-10")
    assert (local(before).date(), local(after).date()) == (date(2026, 10, 24), date(2026, 10, 25))
    assert (local(before).hour, local(after).hour) == (12, 12)
    assert before.hour == 10 and after.hour == 11


def test_dst_in_new_york_keeps_the_local_hour() -> None:
    ny = {"tz": "America/New_York"}
    # Daylight time starts on Sunday 8 March 2026.
    saturday, sunday = one(Platform.X, 6, 31, **ny), one(Platform.X, 7, 31, **ny)
    assert (local(saturday, NEW_YORK).date(), local(sunday, NEW_YORK).date()) == (date(2026, 3, 7), date(2026, 3, 8))
    assert local(saturday, NEW_YORK).time() == time(12, 0) and local(sunday, NEW_YORK).time() == time(12, 10)
    assert (saturday.hour, sunday.hour) == (17, 16)  # UTC-5, then UTC-4
    # And ends on Sunday 1 November 2026.
    last_edt = one(Platform.THREADS, 30, 31, month="2026-10", **ny)
    first_est = one(Platform.THREADS, 0, 30, month="2026-11", **ny)
    assert local(last_edt, NEW_YORK).date() == date(2026, 10, 31) and local(first_est, NEW_YORK).date() == date(
        2026, 11, 1
    )
    assert local(last_edt, NEW_YORK).hour == 19 and local(first_est, NEW_YORK).hour == 19
    assert (last_edt.hour, first_est.hour) == (23, 0)  # 19:00 EDT = 23:00 UTC; 19:00 EST = 00:00 UTC next day


# ---- not_before ---------------------------------------------------------------------------------------------------


def test_not_before_in_the_middle_of_the_month() -> None:
    not_before = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)  # Friday 13th, 16:00 in Prague
    plans = [plan(ALL, slot, 4, not_before=not_before) for slot in range(4)]
    for times in plans:
        for moment in times:
            assert moment >= not_before + LEAD_TIME
            assert in_month(moment, "2026-03")
    # Topics whose days are ahead keep them; the two that passed share the days before the third (13th-19th).
    assert plans[2] == plan(ALL, 2, 4) and plans[3] == plan(ALL, 3, 4)
    day_of = {slot: local(plans[slot][ALL.index(Platform.X)]).day for slot in range(4)}
    assert day_of == {0: 14, 1: 18, 2: 20, 3: 28}


def test_a_topic_whose_hour_passed_today_moves_to_the_next_day_that_allows_it() -> None:
    # Friday 20 March, 12:30 in Prague: topic 2 of 4 is due today.
    not_before = datetime(2026, 3, 20, 12, 30, tzinfo=PRAGUE)
    times = dict(zip(ALL, plan(ALL, 2, 4, not_before=not_before), strict=True))
    assert local(times[Platform.LINKEDIN]) == datetime(2026, 3, 23, 9, 20, tzinfo=PRAGUE)  # Monday, not the weekend
    assert local(times[Platform.X]) == datetime(2026, 3, 21, 12, 20, tzinfo=PRAGUE)  # 12:20 is within the lead time
    assert local(times[Platform.FACEBOOK]) == datetime(2026, 3, 20, 13, 20, tzinfo=PRAGUE)
    assert local(times[Platform.INSTAGRAM]) == datetime(2026, 3, 20, 18, 20, tzinfo=PRAGUE)


def test_not_before_on_the_last_evening_of_the_month_goes_as_soon_as_sensible() -> None:
    not_before = datetime(2026, 3, 31, 21, 0, tzinfo=PRAGUE)
    firsts = [plan(ALL, slot, 4, not_before=not_before) for slot in range(4)]
    for slot, times in enumerate(firsts):
        for platform, moment in zip(ALL, times, strict=True):
            assert moment >= not_before + LEAD_TIME
            wall = local(moment)
            assert wall.date() >= date(2026, 4, 1 + slot)  # one day per late topic
            assert wall.date() <= date(2026, 4, 1 + slot) + timedelta(days=2)
            assert wall.hour == PLATFORM_WINDOWS[platform].at.hour
            assert platform != Platform.LINKEDIN or wall.weekday() < 5
    assert local(firsts[0][ALL.index(Platform.X)]) == datetime(2026, 4, 1, 12, 0, tzinfo=PRAGUE)


def test_a_month_that_is_over_is_published_soon_after_not_before_even_across_a_year() -> None:
    not_before = datetime(2026, 12, 31, 22, 30, tzinfo=UTC)
    for slot in range(3):
        for platform, moment in zip(ALL, plan(ALL, slot, 3, month="2026-12", not_before=not_before), strict=True):
            assert moment >= not_before + LEAD_TIME
            assert local(moment).year == 2027 and local(moment) < datetime(2027, 1, 8, tzinfo=PRAGUE), (
                platform,
                moment,
            )
    february = plan(ALL, 0, 2, month="2026-02", not_before=datetime(2026, 3, 10, 8, 0, tzinfo=UTC))
    assert all(datetime(2026, 3, 10, 8, 10, tzinfo=UTC) <= t < datetime(2026, 3, 13, tzinfo=UTC) for t in february)


def test_the_lead_time_applies_and_an_aware_not_before_in_any_zone_works() -> None:
    nominal = one(Platform.X, 0, 1)  # 16 March 12:00 in Prague = 11:00 UTC
    assert one(Platform.X, 0, 1, not_before=nominal - LEAD_TIME) == nominal
    moved = one(Platform.X, 0, 1, not_before=nominal - LEAD_TIME + timedelta(minutes=1))
    assert local(moved) == datetime(2026, 3, 17, 12, 0, tzinfo=PRAGUE)
    in_india = nominal.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert one(Platform.X, 0, 1, not_before=in_india) == local(moved)


def test_every_time_lies_inside_the_month_whenever_the_month_still_has_room() -> None:
    """Against a brute-force oracle: if any allowed day of the month still has the platform's time after
    not_before + lead, the plan stays in the month; otherwise it comes after; never before not_before."""
    zones = ["Europe/Prague", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
    for tz, month, slots in itertools.product(zones, ["2026-03", "2026-10", "2026-11"], [1, 3, 7]):
        zone = ZoneInfo(tz)
        first, last = month_bounds(month)
        for day_offset, hour in itertools.product(range(-2, 33, 3), (0, 10, 15, 23)):
            not_before = datetime.combine(first + timedelta(days=day_offset), time(hour), tzinfo=zone).astimezone(UTC)
            for slot in range(slots):
                times = plan(ALL, slot, slots, month=month, tz=tz, not_before=not_before)
                for platform, moment in zip(ALL, times, strict=True):
                    window = PLATFORM_WINDOWS[platform]
                    assert moment >= not_before + LEAD_TIME
                    assert moment.astimezone(zone).hour == window.at.hour
                    assert window.allows(moment.astimezone(zone).date())
                    room = any(
                        window.allows(d)
                        and datetime.combine(d, window.at, tzinfo=zone) + timedelta(minutes=59)
                        >= not_before + LEAD_TIME
                        for d in (first + timedelta(days=n) for n in range((last - first).days + 1))
                    )
                    latest_lane = datetime.combine(last, window.at, tzinfo=zone)
                    if room and latest_lane + timedelta(minutes=10 * (slot % 6)) >= not_before + LEAD_TIME:
                        assert first <= moment.astimezone(zone).date() <= last, (tz, month, slot, platform, not_before)


def test_the_plan_is_deterministic_and_checks_its_input() -> None:
    assert plan(ALL, 1, 3) == plan(ALL, 1, 3)
    not_before = datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="slot"):
        plan(ALL, 3, 3)
    with pytest.raises(ValueError, match="slot"):
        plan(ALL, 0, 0)
    with pytest.raises(ValueError, match="month"):
        plan(ALL, 0, 1, month="2026-13")
    with pytest.raises(ValueError, match="month"):
        plan(ALL, 0, 1, month="March")
    with pytest.raises(ValueError, match="aware"):
        plan(ALL, 0, 1, not_before=not_before.replace(tzinfo=None))
    assert plan([], 0, 1) == []


# ---- the schedule_posts activity -------------------------------------------------------------------------------------


async def test_schedule_posts_writes_the_plan_once_and_keeps_it(
    database_url: str, db: Database, tenant: Tenant
) -> None:
    platforms = [Platform.LINKEDIN, Platform.X, Platform.INSTAGRAM]
    posts = await make_posts(db, tenant.id, platforms, timezone="America/New_York", state=PublishState.DRAFT)
    acts = publish_activities(database_url, db)
    env = ActivityEnvironment()
    request = ScheduleRequest(
        pipeline_id=uuid.uuid4(),
        social_post_ids=[p.id for p in posts],
        slot=1,
        slots=4,
        month="2026-03",
        not_before=datetime(2026, 2, 20, tzinfo=UTC),
    )
    schedule = await env.run(acts.schedule_posts, request)

    expected = plan(platforms, 1, 4, tz="America/New_York", not_before=request.not_before)
    assert [s.social_post_id for s in schedule.posts] == [p.id for p in posts]
    assert [s.platform for s in schedule.posts] == platforms
    assert [s.publish_at for s in schedule.posts] == expected
    for post, moment in zip(posts, expected, strict=True):
        row = await reload(db, post.id)
        assert row.publish_at == moment and row.publish_state == PublishState.SCHEDULED

    # A retry, or a later call with another not_before, changes nothing.
    later = request.model_copy(update={"not_before": datetime(2026, 3, 25, tzinfo=UTC)})
    assert (await env.run(acts.schedule_posts, later)).posts == schedule.posts
    assert (await env.run(acts.schedule_posts, request)).posts == schedule.posts


async def test_schedule_posts_keeps_a_time_already_set_and_a_state_already_past_scheduling(
    database_url: str, db: Database, tenant: Tenant
) -> None:
    fixed = datetime(2026, 3, 5, 7, 45, tzinfo=UTC)
    [kept] = await make_posts(db, tenant.id, [Platform.FACEBOOK], state=PublishState.DRAFT, publish_at=fixed)
    [published] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.PUBLISHED)
    acts = publish_activities(database_url, db)
    env = ActivityEnvironment()

    schedule = await env.run(
        acts.schedule_posts,
        ScheduleRequest(
            pipeline_id=uuid.uuid4(),
            social_post_ids=[kept.id],
            slot=0,
            slots=1,
            month="2026-03",
            not_before=LONG_BEFORE,
        ),
    )
    assert schedule.posts[0].publish_at == fixed
    assert (await reload(db, kept.id)).publish_state == PublishState.SCHEDULED

    await env.run(
        acts.schedule_posts,
        ScheduleRequest(
            pipeline_id=uuid.uuid4(),
            social_post_ids=[published.id],
            slot=0,
            slots=1,
            month="2026-03",
            not_before=LONG_BEFORE,
        ),
    )
    row = await reload(db, published.id)
    assert row.publish_state == PublishState.PUBLISHED and row.publish_at is not None


async def test_schedule_posts_refuses_unknown_posts_and_bad_slots(
    database_url: str, db: Database, tenant: Tenant
) -> None:
    [post] = await make_posts(db, tenant.id, [Platform.X], state=PublishState.DRAFT)
    acts = publish_activities(database_url, db)
    env = ActivityEnvironment()
    base = {"pipeline_id": uuid.uuid4(), "month": "2026-03", "not_before": LONG_BEFORE}

    empty = await env.run(acts.schedule_posts, ScheduleRequest(social_post_ids=[], slot=0, slots=1, **base))
    assert empty.posts == []
    with pytest.raises(ApplicationError) as missing:
        await env.run(acts.schedule_posts, ScheduleRequest(social_post_ids=[uuid.uuid4()], slot=0, slots=1, **base))
    assert missing.value.type == "SocialPostNotFound" and missing.value.non_retryable
    with pytest.raises(ApplicationError) as bad:
        await env.run(acts.schedule_posts, ScheduleRequest(social_post_ids=[post.id], slot=2, slots=2, **base))
    assert bad.value.type == "InvalidSchedule" and bad.value.non_retryable
    assert (await reload(db, post.id)).publish_at is None
