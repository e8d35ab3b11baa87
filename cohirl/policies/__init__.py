"""Stage 2 and composition: frozen chunking bases, small policies, residual/ensemble composition."""
