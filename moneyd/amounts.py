"""Amounts as people type them: base units ("1000") or an amount with its asset code ("1.5XRP", "2 xrp")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_WITH_CODE = re.compile(r"\A\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z][A-Za-z0-9]{0,11})\s*\Z")
_PLAIN = re.compile(r"\A\s*[0-9]+\s*\Z")
# 1e3, 2.5E6: base units in scientific notation (not the asset "E3").
_SCIENTIFIC = re.compile(r"\A\s*[0-9]+(?:\.[0-9]+)?[eE][+]?[0-9]{1,3}\s*\Z")


class AmountError(ValueError):
    """The text is not an amount we can use; the message says why."""


@dataclass(frozen=True, slots=True)
class AmountText:
    """A parsed amount before the asset's scale is known (the scale may come from ILDCP)."""

    value: Decimal
    code: str | None  # None: already base units

    def to_base_units(self, asset_code: str, asset_scale: int) -> int:
        if self.code is None:
            return int(self.value)
        if self.code.upper() != asset_code.upper():
            raise AmountError(f"the amount is in {self.code.upper()}, but this moneyd's asset is {asset_code}")
        units = self.value.scaleb(asset_scale)
        if units != units.to_integral_value():
            raise AmountError(f"{self.value:f} {asset_code} has more decimals than the asset's scale ({asset_scale}) allows")
        return int(units)

    def describe(self, base_units: int, asset_code: str, asset_scale: int) -> str:
        """Say which reading was used, so nobody pays 10^9 times too much."""
        human = Decimal(base_units).scaleb(-asset_scale).normalize()
        if self.code is None:
            return f"{base_units} base units (= {human:f} {asset_code} at scale {asset_scale})"
        return f"{human:f} {asset_code} (= {base_units} base units at scale {asset_scale})"


def parse_amount(text: str) -> AmountText:
    if text.strip().startswith("-"):
        raise AmountError("the amount must be more than 0")
    if _SCIENTIFIC.match(text):
        value = Decimal(text.strip())
        if value != value.to_integral_value():
            raise AmountError(f"{text.strip()} is {value:f} base units, not a whole number")
        text = str(int(value))
    if _PLAIN.match(text):
        value = Decimal(text.strip())
        if value <= 0:
            raise AmountError("the amount must be more than 0")
        return AmountText(value, None)
    m = _WITH_CODE.match(text)
    if not m:
        raise AmountError(f"{text!r} is not an amount: give base units (1000) or an amount and asset code (1.5XRP)")
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:
        raise AmountError(f"{text!r} is not a number") from None
    if value <= 0:
        raise AmountError("the amount must be more than 0")
    return AmountText(value, m.group(2))
