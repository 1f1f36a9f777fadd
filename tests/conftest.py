"""Shared fixtures. Fixture modules are imported here so every test module can use them."""
