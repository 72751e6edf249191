"""SSM scan kernels: pure-PyTorch references beside the optional fused mamba_ssm kernels.

Layout follows mamba_ssm (``ops`` below ``modules``): for each op a ``*_fn`` (the fused CUDA/Triton kernel,
``None`` when mamba_ssm is not importable), a ``*_ref`` (pure torch, fp32 inside, same signature) and a
``*_loop`` (the plain per-step recurrence, the ground truth the reference is tested against).
``harness.kernels.ops`` wraps the references as ``torch.library`` custom ops so FLOP counters see them;
``harness.kernels.flop_formulas`` holds their closed-form counts.
"""

from harness.kernels.selective_scan import selective_scan_fn, selective_scan_loop, selective_scan_ref
from harness.kernels.ssd import ssd_fn, ssd_loop, ssd_ref

__all__ = ["selective_scan_fn", "selective_scan_loop", "selective_scan_ref", "ssd_fn", "ssd_loop", "ssd_ref"]
