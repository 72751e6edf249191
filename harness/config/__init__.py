"""YAML suites -> validated pydantic configs (``schema``), with FILE:LINE errors (``yaml_lines``, ``load``)."""
