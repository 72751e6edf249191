"""Two token mixers from outside the harness, registered as plugins (``harness.extend.register_mixer``).

- ``lstm``: a unidirectional LSTM over the tokens (causal by construction). It decodes token by token with
  its ``(h, c)`` state, so it can also serve the autoregressive family (``argen``).
- ``fftconv``: a gated long convolution (H3 / Hyena style, without their SSM or implicit filter): a learned
  filter per channel as long as the sequence, applied by FFT in O(L log L); causal, or bidirectional as
  two causal passes. It does not decode (no ``init_state``/``step``), so ``argen`` refuses it.

Both follow the mixer contract: ``forward(x: (B, L, D), shape=None) -> (B, L, D)``; on 2-D inputs they
read the raster order and ignore ``shape``. Neither is an SSM. Their FLOPs are counted by the harness
(its formulas cover torch's LSTM kernels and the FFTs); nothing needs a closed form.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from harness.extend import MixerSpec, register_mixer


class LSTMMixer(nn.Module):
    """``x (B, L, D) -> LSTM -> (B, L, D)``; ``hidden`` other than ``dim`` adds a projection back to ``dim``."""

    def __init__(self, dim: int, hidden: int | None = None, num_layers: int = 1):
        super().__init__()
        self.hidden, self.num_layers = hidden or dim, num_layers
        self.lstm = nn.LSTM(dim, self.hidden, num_layers, batch_first=True)
        self.proj = nn.Identity() if self.hidden == dim else nn.Linear(self.hidden, dim)

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        y, _ = self.lstm(x)
        return self.proj(y)

    def init_state(self, batch_size: int, max_len: int, device: torch.device, dtype: torch.dtype) -> Any:
        zeros = torch.zeros(self.num_layers, batch_size, self.hidden, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        y, state = self.lstm(x_t[:, None], state)
        return self.proj(y[:, 0]), state


class FFTConvMixer(nn.Module):
    """``out_proj(gate * longconv(u))`` with ``(u, gate) = in_proj(x)``; the filter has ``kernel_len`` taps
    (a sequence longer than that sees the last ``kernel_len`` tokens), initialised to decay exponentially."""

    def __init__(self, dim: int, kernel_len: int = 512, causal: bool = True):
        super().__init__()
        self.causal, self.kernel_len = causal, kernel_len
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)
        decay = torch.exp(-torch.arange(kernel_len) / (kernel_len / 8))
        directions = 1 if causal else 2
        self.filters = nn.Parameter(torch.randn(directions, dim, kernel_len) * decay / dim**0.5)

    def _conv(self, u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Causal convolution of ``u (B, D, L)`` with ``k (D, K)`` along L, by zero-padded FFT."""
        length = u.shape[-1]
        k = k[:, :length]
        n = 2 * length
        y = torch.fft.irfft(torch.fft.rfft(u.float(), n=n) * torch.fft.rfft(k.float(), n=n), n=n)[..., :length]
        return y.to(u.dtype)

    def forward(self, x: torch.Tensor, shape: tuple[int, int] | None = None) -> torch.Tensor:
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        u = u.transpose(1, 2)
        y = self._conv(u, self.filters[0])
        if not self.causal:  # the second filter reads the sequence backwards
            y = y + self._conv(u.flip(-1), self.filters[1]).flip(-1)
        return self.out_proj(torch.sigmoid(gate) * y.transpose(1, 2))


register_mixer(MixerSpec("lstm", LSTMMixer, is_ssm=False, causal="always", decode=True,
                         description="unidirectional LSTM (example plugin)"))
register_mixer(MixerSpec("fftconv", FFTConvMixer, is_ssm=False, causal="option",
                         description="gated FFT long convolution, H3/Hyena-style (example plugin)"))
