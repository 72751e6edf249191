"""Sequence diagnostics: selective copying (Mamba), MQAR associative recall (Zoology), majority."""
