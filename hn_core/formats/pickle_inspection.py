"""Name the classes and functions a pickle would import, by reading its opcodes (never running it).

Used only to explain why torch's restricted loader refused a file: a pickle that imports
`os.system` is an attack or a foreign object, not damage.
"""
from __future__ import annotations

import io
import pickletools
import zipfile

# Imports every torch.save file makes; allowed by torch's restricted loader.
_HARMLESS_PREFIXES = ("torch", "collections")
_MAX_PICKLE_BYTES = 64 << 20


def foreign_imports(path) -> list[str]:
    """'module.name' entries the pickle in `path` (raw or inside a torch zip) would import."""
    try:
        data = _pickle_bytes(path)
        found = []
        strings: list[str] = []
        for opcode, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # unparsable: damaged data, which the caller reports as such
        return []
    return [name for name in found if not name.startswith(_HARMLESS_PREFIXES)]


def _pickle_bytes(path) -> bytes:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            return archive.read(name)[:_MAX_PICKLE_BYTES]
    with open(path, "rb") as f:
        return f.read(_MAX_PICKLE_BYTES)
