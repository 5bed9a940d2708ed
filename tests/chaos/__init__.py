"""Tests of the chaos harness."""
