"""The ``pde`` family (Cheng et al., Mamba Neural Operator, arXiv 2410.02113): the schemas (``config``),
solvers and datasets (``solvers``, ``data``, ``pdebench``), the paired operators (``model``), PDEBench's
error metrics (``metrics``) and the family itself with its variant table (``family``)."""
