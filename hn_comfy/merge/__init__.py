"""Merging connected HYPERNETWORK sockets into one network (the maths is hn_core.merge)."""
