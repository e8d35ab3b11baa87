"""Stage 5: figures and tables from committed result rows (and stage-1 diagnostics plots)."""
