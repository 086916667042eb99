"""The hypernetwork itself: its config (A1111 metadata), activations, weight init, the residual MLP
pairs per dim (``hypernetwork.py``) and a human-readable summary (``describe.py``)."""
