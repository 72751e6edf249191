"""nn.Modules: token mixers (chosen by name from ``MIXERS``), blocks, 2-D scan orders.

Layering (as in mamba_ssm): ``harness.kernels`` (fused ops + pure-torch references) -> ``harness.modules``
-> ``harness.models`` (skeletons) -> ``harness.families``. Lower layers never import upward.
"""
