"""A tag's name -> one file of a ComfyUI model folder, the way A1111 names networks: by file stem.

A1111 lists ``**/*.pt`` under its hypernetworks folder and keys each file by its stem, so files in
subfolders count and the folder is not part of the name. Where A1111 lets a later file silently win
a clash, this refuses a name that matches two files; such a file can then be named as ComfyUI lists
it (``<hypernet:sub/style.pt>``), or by that path without the suffix (``<hypernet:sub/style>``).
An unknown name is an error listing the closest names.
"""
from __future__ import annotations

import difflib
import posixpath

import folder_paths

from ...hn_core.prompt.a1111_tags import PromptTagError


def _stem(relative: str) -> str:
    return posixpath.splitext(posixpath.basename(relative))[0]


def _without_suffix(relative: str) -> str:
    return posixpath.splitext(relative)[0]


def find_file(tag_text: str, name: str, folder: str, names: list[str]) -> tuple[str, str]:
    """(the name ComfyUI lists, its full path) of the one file in ``names`` (a listing of ``folder``)
    called ``name``; raises PromptTagError naming ``tag_text`` when there is none or more than one."""
    wanted = name.replace("\\", "/")
    by_path = "/" in wanted
    key = _without_suffix if by_path else _stem
    listed = {relative: relative.replace("\\", "/") for relative in names}
    exact = [relative for relative, normal in listed.items() if normal == wanted]
    matches = exact or sorted(relative for relative, normal in listed.items() if key(normal) == wanted)
    if not matches:
        candidates = sorted({key(normal) for normal in listed.values()})
        close = difflib.get_close_matches(wanted, candidates, n=3, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else (
            f"; the folder holds {len(candidates)} file(s)" if candidates else "; the folder is empty")
        raise PromptTagError(tag_text, f"no file named {name!r} in the '{folder}' model folders "
                                       f"({', '.join(folder_paths.get_folder_paths(folder))}){hint}")
    if len(matches) > 1:
        raise PromptTagError(tag_text, f"the name {name!r} matches {len(matches)} files ({', '.join(matches)}); "
                                       "rename one, or write the file as listed, e.g. "
                                       f"<{tag_text[1:].split(':', 1)[0]}:{listed[matches[0]]}>")
    full_path = folder_paths.get_full_path(folder, matches[0])
    if full_path is None:
        raise PromptTagError(tag_text, f"{matches[0]} vanished from the '{folder}' model folders")
    return matches[0], full_path
