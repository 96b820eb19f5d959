"""Sample-quality metrics. ``modes``: mode coverage on the 2-D toy mixtures."""
