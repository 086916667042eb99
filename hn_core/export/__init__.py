"""Turning a hypernetwork's change of a model into weight changes: the exact affine change per to_k/to_v,
low-rank factors, the linear fit of a non-linear network, kohya LoRA key names and the LoRA file."""
