"""Renderers: they read a Trace and never compute pipeline values."""
