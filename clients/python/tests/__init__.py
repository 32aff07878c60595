"""Tests of the flo Python SDK (stdlib unittest; see harness.py)."""
