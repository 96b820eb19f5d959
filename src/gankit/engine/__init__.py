"""The one training loop shared by every recipe (see ``gankit.engine.loop``)."""
