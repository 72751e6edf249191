"""The ``attention`` mixer: multi-head softmax self-attention, the Transformer side of every pairing.

Global attention (optionally causal, with a KV cache for autoregressive decoding: the AiM comparison),
or Swin-style (shifted) window attention over a 2-D grid with relative position bias, as in the window
attention of SwinIR / MambaIRv2 (arXiv 2103.14030, 2411.15269). Positions: none, RoPE or relative bias
(``harness.modules.positions``).

The kernel is torch's ``scaled_dot_product_attention`` (or xformers' memory-efficient attention when
asked for). ``last_backend`` names the kernel that actually ran, as torch's own dispatcher chose it
(``torch._fused_sdp_choice``, the function SDPA itself calls): ``sdpa-flash``, ``sdpa-efficient``,
``sdpa-cudnn``, ``sdpa-math`` on CUDA, ``sdpa-flash-cpu`` / ``sdpa-math-cpu`` on CPU, or ``xformers``.

    attn = create_mixer("attention", 256, n_heads=4, causal=True, pos="rope")
    swin = create_mixer("attention", 48, n_heads=4, window=16, shift=True, pos="relative")
    y = swin(x, shape=(64, 64))
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from harness.modules.positions import RelativePositionBias, apply_rope, grid_coords, rope_angles

_KERNEL_NAMES = {
    SDPBackend.MATH: "math",
    SDPBackend.FLASH_ATTENTION: "flash",
    SDPBackend.EFFICIENT_ATTENTION: "efficient",
    SDPBackend.CUDNN_ATTENTION: "cudnn",
}


def sdpa_kernel_name(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> str:
    """The SDPA kernel torch's dispatcher picks for these inputs (honours ``sdpa_kernel`` contexts)."""
    choice = SDPBackend(torch._fused_sdp_choice(q, k, v, attn_mask=mask, is_causal=is_causal))
    name = f"sdpa-{_KERNEL_NAMES.get(choice, choice.name.lower())}"
    return name if q.device.type == "cuda" else f"{name}-{q.device.type}"


def sdpa_kernels(names: list[str] | None) -> contextlib.AbstractContextManager:
    """A context that allows only these SDPA kernels, tried in this order (``None``: torch's own choice).

    The run's ``measure.sdpa_kernels``: e.g. ``[flash, cudnn, efficient, math]`` makes an H100 run
    FlashAttention-2 where torch would pick cuDNN's fused attention first. Process-wide while it is open.
    """
    if names is None:
        return contextlib.nullcontext()
    if "set_priority" not in inspect.signature(sdpa_kernel).parameters:
        raise RuntimeError(f"measure.sdpa_kernels needs torch >= 2.6 (sdpa_kernel's set_priority); this is torch {torch.__version__}")
    by_name = {name: backend for backend, name in _KERNEL_NAMES.items()}
    return sdpa_kernel([by_name[name] for name in names], set_priority=True)


def _load_xformers():
    """xformers' ``ops`` module, or an ImportError explaining how to get it."""
    try:
        import xformers.ops as xops
    except ImportError as exc:
        raise ImportError("attention backend 'xformers' needs the xformers package (pip install 'harness[xformers]')") from exc
    return xops


@dataclass
class KVCache:
    """Keys/values ``(B, H, max_len, head_dim)`` written one position at a time; ``pos`` is the next slot."""

    k: torch.Tensor
    v: torch.Tensor
    pos: int = 0


class Attention(nn.Module):
    """Multi-head self-attention; ``(B, L, D) -> (B, L, D)``, projections included, no norm/residual.

    Heads: ``n_heads`` and ``head_dim`` default to 64-channel heads (one head below 64 channels); the
    inner width ``n_heads * head_dim`` may differ from ``dim`` when ``dim`` is not a multiple.
    ``window``/``shift`` make it Swin window attention (needs ``shape``; ``shift=True`` means half a
    window); ``pos="relative"`` is Swin's per-window bias there and a clipped 1-D offset bias
    (``max_distance``) on whole sequences. ``backend``: ``auto`` uses xformers on CUDA when it is
    installed, else SDPA; ``sdpa`` always SDPA; ``xformers`` requires it (GPU only). When installed
    xformers fails to run (kernels not built for this GPU/torch), both warn once and use SDPA.
    """

    def __init__(
        self,
        dim: int,
        n_heads: int | None = None,
        head_dim: int | None = None,
        causal: bool = False,
        window: int | tuple[int, int] | None = None,
        shift: bool | int = False,
        pos: Literal["none", "rope", "relative"] = "none",
        backend: Literal["auto", "sdpa", "xformers"] = "auto",
        qkv_bias: bool = True,
        rope_base: float = 10000.0,
        max_distance: int = 128,
    ):
        super().__init__()
        if pos not in ("none", "rope", "relative"):
            raise ValueError(f"unknown pos {pos!r}; use none, rope or relative")
        if backend not in ("auto", "sdpa", "xformers"):
            raise ValueError(f"unknown attention backend {backend!r}; use auto, sdpa or xformers")
        if window is not None and causal:
            raise ValueError("window attention is for 2-D inputs and cannot be causal")
        if head_dim is None:
            n_heads = n_heads or max(1, dim // 64)
            head_dim = max(1, dim // n_heads)
        n_heads = n_heads or max(1, dim // head_dim)
        self.n_heads, self.head_dim, self.inner = n_heads, head_dim, n_heads * head_dim
        self.causal, self.pos, self.backend, self.rope_base = causal, pos, backend, rope_base
        self.window = None if window is None else ((window, window) if isinstance(window, int) else tuple(window))
        if self.window is not None:
            half = (self.window[0] // 2, self.window[1] // 2)
            self.shift = half if shift is True else (0, 0) if shift is False else (int(shift), int(shift))
        else:
            self.shift = (0, 0)
        self.qkv = nn.Linear(dim, 3 * self.inner, bias=qkv_bias)
        self.proj = nn.Linear(self.inner, dim)
        self.rel_bias = None
        if pos == "relative":
            self.rel_bias = RelativePositionBias(n_heads, self.window if self.window is not None else (max_distance,))
        self.last_backend = ""
        self._xformers_failure: str | None = None

    # -- full-sequence forward -------------------------------------------------------------------
    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        B, L, _ = x.shape
        if shape is not None and shape[0] * shape[1] != L:
            raise ValueError(f"shape {tuple(shape)} does not match sequence length {L}")
        q, k, v = self.qkv(x).view(B, L, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if self.pos == "rope":
            coords = grid_coords(tuple(shape), x.device) if shape is not None else grid_coords((L,), x.device)
            angles = rope_angles(coords, self.head_dim, self.rope_base)
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        if self.window is not None:
            if shape is None:
                raise ValueError("window attention needs the 2-D shape of the input")
            out = self._window_attention(q, k, v, tuple(shape))
        else:
            mask, is_causal = None, self.causal
            if self.rel_bias is not None:
                mask = self.rel_bias(grid_coords((L,), x.device)).to(q.dtype)
                if self.causal:  # SDPA takes a mask or is_causal, not both: fold causality into the bias
                    mask = mask.masked_fill(torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
                    is_causal = False
            out = self._attend(q, k, v, mask, is_causal)
        return self.proj(out.transpose(1, 2).reshape(B, L, self.inner))

    def _window_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """Swin (shifted) window attention on ``(B, H, L, hd)`` tensors of a raster ``shape`` grid."""
        B, nh, L, hd = q.shape
        # Like Swin, a window larger than the grid shrinks to it, and then that axis is not shifted.
        win = (min(self.window[0], shape[0]), min(self.window[1], shape[1]))
        shift = tuple(s if w < n else 0 for s, w, n in zip(self.shift, win, shape))
        if shape[0] % win[0] or shape[1] % win[1]:
            raise ValueError(f"grid {shape} is not a multiple of the attention window {win}; pad the input first")
        grid = (shape[0] // win[0], shape[1] // win[1])
        n_win, N = grid[0] * grid[1], win[0] * win[1]

        def to_windows(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(B, nh, *shape, hd)
            if any(shift):
                t = torch.roll(t, shifts=(-shift[0], -shift[1]), dims=(2, 3))
            t = t.reshape(B, nh, grid[0], win[0], grid[1], win[1], hd).permute(0, 2, 4, 1, 3, 5, 6)
            return t.reshape(B * n_win, nh, N, hd)

        mask = None
        if self.rel_bias is not None:
            mask = self.rel_bias(grid_coords(win, q.device)).to(q.dtype)[None]  # (1, nh, N, N)
        if any(shift):
            blocked = self._shift_mask(shape, win, shift, q.device)  # (n_win, N, N)
            shift_bias = torch.zeros(blocked.shape, dtype=q.dtype, device=q.device).masked_fill(blocked, float("-inf"))
            mask = shift_bias[:, None] if mask is None else mask + shift_bias[:, None]  # (n_win, nh|1, N, N)
            mask = mask.expand(B, n_win, nh, N, N).reshape(B * n_win, nh, N, N)
        out = self._attend(to_windows(q), to_windows(k), to_windows(v), mask, False)
        out = out.reshape(B, grid[0], grid[1], nh, win[0], win[1], hd).permute(0, 3, 1, 4, 2, 5, 6)
        out = out.reshape(B, nh, *shape, hd)
        if any(shift):
            out = torch.roll(out, shifts=shift, dims=(2, 3))
        return out.reshape(B, nh, L, hd)

    @staticmethod
    def _shift_mask(shape: tuple[int, int], win: tuple[int, int], shift: tuple[int, int], device: torch.device) -> torch.Tensor:
        """True where a query/key pair of a shifted window came from different image regions (Swin's mask)."""
        labels = []
        for n, w, s in zip(shape, win, shift):
            lab = torch.zeros(n, dtype=torch.long, device=device)
            if s:
                lab[n - w : n - s] = 1
                lab[n - s :] = 2
            labels.append(lab)
        region = labels[0][:, None] * 3 + labels[1][None, :]
        region = region.reshape(shape[0] // win[0], win[0], shape[1] // win[1], win[1]).permute(0, 2, 1, 3)
        region = region.reshape(-1, win[0] * win[1])
        return region[:, :, None] != region[:, None, :]

    # -- kernels ----------------------------------------------------------------------------------
    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
        """Softmax attention on ``(B, H, L, hd)``; records the backend that ran in ``last_backend``."""
        if self._want_xformers(q):
            try:
                out = self._xformers_attention(q, k, v, mask, is_causal)
                self.last_backend = "xformers"
                return out
            except (NotImplementedError, RuntimeError) as exc:
                if isinstance(exc, torch.cuda.OutOfMemoryError):
                    raise
                # Installed but its CUDA kernels did not load (or reject these inputs): say so once, use SDPA.
                self._xformers_failure = f"{type(exc).__name__}: {exc}".splitlines()[0]
                warnings.warn(f"xformers attention did not run ({self._xformers_failure}); falling back to SDPA", stacklevel=2)
        self.last_backend = sdpa_kernel_name(q, k, v, mask, is_causal)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)

    def _want_xformers(self, q: torch.Tensor) -> bool:
        if self.backend == "sdpa" or self._xformers_failure is not None:
            return False
        if self.backend == "xformers":
            if q.device.type != "cuda":
                raise RuntimeError("attention backend 'xformers' is GPU-only; use backend 'sdpa' or 'auto' on CPU")
            _load_xformers()
            return True
        if q.device.type != "cuda":
            return False
        try:
            _load_xformers()
        except ImportError:
            return False
        return True

    @staticmethod
    def _xformers_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, is_causal: bool) -> torch.Tensor:
        xops = _load_xformers()
        bias = xops.LowerTriangularMask() if is_causal else None
        if mask is not None:
            bias = mask.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
        out = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=bias)
        return out.transpose(1, 2)

    # -- incremental decoding (causal only) -------------------------------------------------------
    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> KVCache:
        if not self.causal or self.window is not None:
            raise RuntimeError("incremental decoding needs a causal, non-windowed attention mixer")
        size = (batch_size, self.n_heads, max_len, self.head_dim)
        return KVCache(torch.zeros(size, device=device, dtype=dtype), torch.zeros(size, device=device, dtype=dtype))

    def step(self, x_t: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        """One token ``x_t: (B, D)`` at position ``state.pos``; equals row ``pos`` of the causal forward."""
        B = x_t.shape[0]
        t = state.pos
        if t >= state.k.shape[2]:
            raise RuntimeError(f"KV cache is full ({state.k.shape[2]} positions)")
        q, k, v = self.qkv(x_t).view(B, 3, self.n_heads, 1, self.head_dim).unbind(1)
        if self.pos == "rope":
            angles = rope_angles(torch.tensor([[t]], device=x_t.device), self.head_dim, self.rope_base)
            q, k = apply_rope(q, angles), apply_rope(k, angles)
        state.k[:, :, t : t + 1] = k.to(state.k.dtype)
        state.v[:, :, t : t + 1] = v.to(state.v.dtype)
        state.pos = t + 1
        keys, values = state.k[:, :, : t + 1].to(q.dtype), state.v[:, :, : t + 1].to(q.dtype)
        mask = None
        if self.rel_bias is not None:
            coords = grid_coords((t + 1,), x_t.device)
            mask = self.rel_bias(coords[t:], coords).to(q.dtype)  # (H, 1, t+1)
        out = self._attend(q, keys, values, mask, False)
        return self.proj(out.reshape(B, self.inner)), state
