"""Training inside ComfyUI: the frozen training clone, the model call, dataset and caption inputs,
previews drawn while training, and the progress bar. The loop itself is hn_core.training."""
