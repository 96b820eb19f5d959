"""Architectures only: one file per paper, pure ``forward()``; no losses, configs or I/O."""
