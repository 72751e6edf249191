"""Benchmarks and conformance checks: scripts that build mixers and measure them, above ``modules`` and
``measure`` (nothing below imports them).

``bench`` (``harness bench``): whole mixers across sequence lengths, the result rows' cost columns.
``conformance`` (``python -m harness.benchmarks.conformance``): mamba_ssm's and causal_conv1d's kernels
and modules against our references, the harness timer against ``triton.testing.do_bench``, and our
Mamba / Mamba-2 layers timed beside mamba_ssm's own modules.
"""
