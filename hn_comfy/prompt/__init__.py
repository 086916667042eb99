"""Apply Hypernetworks from Prompt: tag names -> model files, and applying the tags in prompt order."""
