"""Readers for user inputs: labels and detection-head outputs."""
