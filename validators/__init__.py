"""Dataset checks: each yields :class:`~segdata.model.Finding` objects under a stable code."""
