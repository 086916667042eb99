"""How the pack's nodes present themselves: socket type names, categories, text shown on a node."""
