"""The DNA extraction schema: sources are cited 1-based like research markers, stored 0-based."""

import pytest
from pydantic import ValidationError

from models.generation import CompanyDNAExtraction, DataPoint


def extraction(numbers: list[list[int]], names: list[str] | None = None) -> CompanyDNAExtraction:
    names = names or [f"Point {i}" for i in range(len(numbers))]
    return CompanyDNAExtraction(
        summary="A company that makes things for people.",
        data_points=[
            DataPoint(name=n, category="company", value="v", source_numbers=s)
            for n, s in zip(names, numbers, strict=True)
        ],
    )


def test_citations_must_point_at_real_sources() -> None:
    ok = extraction([[1, 3]] * 30, [f"P{i}" for i in range(30)])
    assert ok.check_against(3) == []
    bad = extraction([[0]] + [[4]] + [[2]] * 28)
    problems = bad.check_against(3)
    assert len(problems) == 2
    assert "[0]" in problems[0] and "only [1] to [3] exist" in problems[0]


def test_names_are_unique_and_at_least_30_points_are_needed() -> None:
    repeated = extraction([[1]] * 30, ["Founded"] * 2 + [f"P{i}" for i in range(28)])
    assert any("repeats the name" in p for p in repeated.check_against(1))
    with pytest.raises(ValidationError):
        extraction([[1]] * 29)


def test_stored_points_use_zero_based_source_indexes() -> None:
    point = DataPoint(name="Founded", category="company", value="2014", source_numbers=[3, 1, 3])
    assert point.to_stored() == {"name": "Founded", "category": "company", "value": "2014", "source_indexes": [0, 2]}
