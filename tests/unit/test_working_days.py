"""Working-day arithmetic on the Chinese public holiday calendar (calendar_cn.json)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import chinese_calendar
import pytest

from intake.working_days import WorkingCalendar, get_calendar, office_day_end, parse_calendar


def test_calendar_2026_matches_chinese_calendar_package() -> None:
    # GIVEN our calendar and the chinesecalendar package
    calendar = get_calendar()
    day = date(2026, 1, 1)

    # WHEN every day of 2026 is compared
    differences = []
    while day.year == 2026:
        if calendar.is_working_day(day) != chinese_calendar.is_workday(day):
            differences.append(day)
        day += timedelta(days=1)

    # THEN they agree on every day
    assert differences == []


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 1, 4), True),  # Sunday, make-up working day for 元旦
        (date(2026, 2, 14), True),  # Saturday, make-up for 春节
        (date(2026, 2, 23), False),  # Monday inside 春节
        (date(2026, 5, 9), True),  # Saturday, make-up for 劳动节
        (date(2026, 9, 20), True),  # Sunday, make-up for 国庆
        (date(2026, 10, 7), False),  # Wednesday inside 国庆
        (date(2026, 10, 10), True),  # Saturday, make-up for 国庆
        (date(2026, 10, 11), False),  # ordinary Sunday
        (date(2027, 2, 8), False),  # provisional 春节 2027
        (date(2027, 2, 9), True),
    ],
)
def test_is_working_day_cases(day: date, working: bool) -> None:
    # WHEN / THEN
    assert get_calendar().is_working_day(day) is working


def test_add_working_days_skips_national_day() -> None:
    # GIVEN Wednesday 2026-09-30, the last working day before 国庆

    # WHEN 3 working days are added
    result = get_calendar().add_working_days(date(2026, 9, 30), 3)

    # THEN Thu 10-08, Fri 10-09 and the make-up Saturday 10-10 count
    assert result == date(2026, 10, 10)


def test_add_zero_working_days_from_holiday_gives_next_working_day() -> None:
    # WHEN / THEN
    assert get_calendar().add_working_days(date(2026, 10, 1), 0) == date(2026, 10, 8)


def test_add_negative_working_days_raises() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        get_calendar().add_working_days(date(2026, 3, 2), -1)


def test_working_days_between_counts_end_not_start() -> None:
    # WHEN counting from Thu 2026-10-08 to Mon 2026-10-12
    count = get_calendar().working_days_between(date(2026, 10, 8), date(2026, 10, 12))

    # THEN Fri 10-09, Sat 10-10 (make-up) and Mon 10-12 count
    assert count == 3


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-09-30T17:29:00+08:00", date(2026, 9, 30)),
        ("2026-09-30T17:30:00+08:00", date(2026, 10, 8)),
        ("2026-10-03T09:00:00+08:00", date(2026, 10, 8)),
        ("2026-10-10T08:00:00+08:00", date(2026, 10, 10)),
        ("2026-09-30T01:00:00+00:00", date(2026, 9, 30)),  # 09:00 China time
    ],
)
def test_clock_start_day_cases(moment: str, expected: date) -> None:
    # WHEN / THEN
    assert get_calendar().clock_start_day(datetime.fromisoformat(moment).timestamp()) == expected


def test_office_day_end_is_1730_china_time() -> None:
    # WHEN / THEN
    assert (
        office_day_end(date(2026, 10, 10)) == datetime.fromisoformat("2026-10-10T09:30:00+00:00").timestamp()
    )


def test_uncovered_year_counts_weekdays_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    # GIVEN a calendar that covers only 2026
    calendar = parse_calendar({"years": {"2026": {"holidays": [], "make_up_working_days": []}}})

    # WHEN a date of 2030 is checked
    monday, saturday = calendar.is_working_day(date(2030, 1, 7)), calendar.is_working_day(date(2030, 1, 5))

    # THEN Monday to Friday count, and the gap is logged
    assert monday is True
    assert saturday is False
    assert "year not in the working-day calendar" in caplog.text


def test_calendar_rejects_day_both_holiday_and_working() -> None:
    # GIVEN a document listing a date twice
    document = {
        "years": {
            "2026": {
                "holidays": [{"name": "x", "dates": ["2026-10-10"]}],
                "make_up_working_days": [{"name": "x", "dates": ["2026-10-10"]}],
            }
        }
    }

    # WHEN / THEN
    with pytest.raises(ValueError, match="both holiday and working day"):
        parse_calendar(document)


def test_calendar_2027_is_marked_provisional() -> None:
    # WHEN / THEN
    calendar: WorkingCalendar = get_calendar()
    assert calendar.provisional_years == frozenset({2027})
