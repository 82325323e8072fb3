"""moneyd.amounts: amounts as people type them, read one way only, and said back so nobody pays 10^9 times too much."""

from __future__ import annotations

from decimal import Decimal

import pytest

from moneyd.amounts import AmountError, AmountText, parse_amount


@pytest.mark.parametrize(
    ("text", "units"),
    [("1000", 1000), (" 42 ", 42), ("1e3", 1000), ("2.5E6", 2_500_000), ("1.5XRP", 1_500_000_000), ("2 xrp", 2_000_000_000),
     (".5XRP", 500_000_000), ("0.000000001XRP", 1)],
)
def test_readings(text: str, units: int) -> None:
    assert parse_amount(text).to_base_units("XRP", 9) == units


@pytest.mark.parametrize(
    ("text", "problem"),
    [("0", "more than 0"), ("-5", "more than 0"), ("0XRP", "more than 0"), ("1.5e0", "not a whole number"),
     ("1.5", "is not an amount"), ("XRP", "is not an amount"), ("1,000", "is not an amount"), ("", "is not an amount")],
)
def test_what_is_not_an_amount(text: str, problem: str) -> None:
    with pytest.raises(AmountError, match=problem):
        parse_amount(text)


def test_the_asset_and_its_scale_must_fit() -> None:
    with pytest.raises(AmountError, match=r"the amount is in ETH, but this moneyd's asset is XRP"):
        parse_amount("1ETH").to_base_units("XRP", 9)
    with pytest.raises(AmountError, match=r"0.0000001 XRP has more decimals than the asset's scale \(6\) allows"):
        parse_amount("0.0000001XRP").to_base_units("XRP", 6)
    assert parse_amount("0.000001xrp").to_base_units("XRP", 6) == 1


def test_the_reading_used_is_said_back() -> None:
    assert parse_amount("1000").describe(1000, "XRP", 9) == "1000 base units (= 0.000001 XRP at scale 9)"
    assert parse_amount("1.5XRP").describe(1_500_000_000, "XRP", 9) == "1.5 XRP (= 1500000000 base units at scale 9)"
    assert AmountText(Decimal(3), None).to_base_units("ETH", 18) == 3  # base units need no scale
