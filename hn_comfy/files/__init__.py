"""The hypernetworks model folder: finding and loading files once, save paths, optimizer sidecars."""
