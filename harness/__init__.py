"""harness: does this task need a state-space model?

Paired Mamba / Transformer / Gated-CNN (MambaOut) variants of one skeleton, trained and measured under
one protocol; see README.md. Layers: kernels -> modules -> models -> families; config -> plan -> execute
-> run -> measure -> store -> report.
"""

__version__ = "0.1.0"
