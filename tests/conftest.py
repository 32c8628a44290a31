"""Shared pytest setup: the invoiz sandbox fixture comes with the tap-invoiz distribution."""

pytest_plugins = ["invoiz_sandbox.pytest_plugin"]
