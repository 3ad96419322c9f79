"""Pure, synchronous logic: no aiohttp, redis or structlog here (import-linter enforces it)."""
