"""Using a hypernetwork while sampling: the attention patch, strength profiles (per attention, per block,
step ranges), folding a linear network into to_k/to_v, the text-context cache, and model-family matching."""
