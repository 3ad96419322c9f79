"""The taxonomy's value types and vocabularies (kinds, MASK operator names)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STYLES = ("standard", "strict")

# Value shapes a category can have; each selects a parser in gateway.core.masking.
_KIND_NAMES = """
    generic name id passport mobile landline email address postal_code birth_date plate ip
    uscc amount card account records credential
"""
KINDS = frozenset(_KIND_NAMES.split())

# MASK operators implemented by gateway.core.masking (a test keeps both in step).
_OPERATOR_NAMES = """
    thirds fixed name_surname name_last id_6_4 id_1_1 passport_3 passport_type mobile_3_4
    mobile_3_2 landline_area_4 landline_4_2 email_first email_first_tld address_district
    address_city postal_4 birth_year age_band plate_2_1 plate_region ip_network ip_first
    uscc_8_1 amount_band card_6_4 card_last4 account_last4
"""
MASK_OPERATORS = frozenset(_OPERATOR_NAMES.split())


@dataclass(frozen=True, slots=True)
class Level:
    code: str
    rank: int
    name_zh: str
    name_en: str
    aliases: tuple[str, ...] = ()
    never_clear: bool = False  # values at this level are replaced even under ALLOW


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    level: str
    spi: bool
    kind: str
    masks: Mapping[str, str] = field(hash=False)  # style -> MASK operator name
    number_as_string: bool
    label: str  # display name (zh)
    label_en: str = ""
    aliases: tuple[str, ...] = ()
    # typed free-form by staff (a name, an address): shown in clear, such a value is
    # still scanned for identifiers above the caller's clearance (a card in a name)
    free_form: bool = False


@dataclass(frozen=True, slots=True)
class RecordAttribute:
    name: str
    values: tuple[str, ...]
    label: str
