"""core/codecs."""
