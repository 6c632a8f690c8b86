"""The HTTP side of Breachflow: provider callbacks and the public notice page."""
