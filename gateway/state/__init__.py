"""The only package that talks to Redis. Every key name lives in `keys.py`.

Each store has a Redis implementation (shared by all replicas) and an in-memory
twin with the same interface (single-process demo and unit tests).
"""
