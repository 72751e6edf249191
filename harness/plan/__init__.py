"""Planning: a validated suite -> frozen run specs with stable ids (hash of the resolved config)."""
