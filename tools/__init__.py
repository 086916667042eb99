"""Runner code for the main job (``scripts/run_main_job.sh``) and the end-to-end tests.

Nothing here is imported by the node pack itself. Modules that need ComfyUI's own code
(``default_model``) import it only inside functions and are run as subprocesses, so the
caller's process never holds ComfyUI's global state.
"""
