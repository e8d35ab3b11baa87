"""Stage 5: figures and tables from committed result rows (rows only: no simulator here)."""
