"""Hypernetwork to LoRA and Bake Hypernetwork: the export plan, probe inputs, calibration of a linear
fit on the model's own activations, and the fidelity measured against Apply Hypernetwork."""
