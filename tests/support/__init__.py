"""Fakes and helpers shared by the test suites and local demos."""
