"""Hostile input against a real moneyd process: attacks, fuzzing, kill loops (bench/ runs them at full size)."""
