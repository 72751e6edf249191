"""Benchmarks: scripts that measure and report numbers (run with ``python -m harness.benchmarks.<name>``),
above ``modules``, ``measure`` and ``report`` (nothing below imports them).

``bench`` (``harness bench``): whole mixers across sequence lengths, the result rows' cost columns.
``conformance``: mamba_ssm's and causal_conv1d's kernels and modules against our references, the harness
timer against ``triton.testing.do_bench``, and (``layers``) our Mamba / Mamba-2 layers timed beside
mamba_ssm's own modules. ``verdict_errors``: the verdict rule's error rates by simulation.
``cpu_scan``: whole CPU runs (``harness run``) of one git ref's code against the working tree.
``sr_folder_memory``: peak RSS reading a DIV2K-sized SR folder, all decoded up front vs lazily.
"""
