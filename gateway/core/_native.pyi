# The compiled detectors (native/src/lib.rs); present when the extension was built.

VERSION: str

def scan_numbers(
    text: str, import_year: int, year: int, month: int, day: int
) -> list[tuple[int, int, str, str, float]] | None: ...
def set_domain(domain: dict[str, str]) -> bool: ...
def detect(
    text: str, import_year: int, year: int, month: int, day: int
) -> list[tuple[int, int, str, str, float]] | None: ...
def classify_value(
    value: str, ctx: str, import_year: int, year: int, month: int, day: int
) -> tuple[bool, tuple[str, int, int, str, float] | None]: ...
