"""Skeletons: whole networks built from ``harness.modules`` blocks, with the mixer chosen by name."""
