"""A contact sheet: the main job's images side by side, one row per workflow, each labelled.

Rows keep the order the caller gives; images in a row are scaled to one cell height so a 128 px
render and an 800 px loss graph can share a sheet. Written atomically.
"""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from hn_core.atomic_write import atomic_write

CELL = 192  # height of an image on the sheet
LABEL = 28  # room under each image for its label
PAD = 8
TITLE = 24  # room above each row for the workflow's name


def contact_sheet(rows: list[tuple[str, list[tuple[str, Path]]]], out_path: Path) -> Path:
    """``rows``: (row title, [(label, image path), ...]); returns ``out_path``."""
    rows = [(title, items) for title, items in rows if items]
    if not rows:
        raise ValueError("no images for the contact sheet")
    font = ImageFont.load_default()
    placed = [(title, [(label, _fit(Image.open(path))) for label, path in items]) for title, items in rows]
    width = max(PAD + sum(image.width + PAD for _l, image in items) for _t, items in placed)
    height = sum(TITLE + CELL + LABEL + PAD for _r in placed) + PAD
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = PAD
    for title, items in placed:
        draw.text((PAD, y), title, fill="black", font=font)
        y += TITLE
        x = PAD
        for label, image in items:
            sheet.paste(image, (x, y))
            draw.text((x, y + CELL + 6), _shorten(draw, label, image.width, font), fill="black", font=font)
            x += image.width + PAD
        y += CELL + LABEL + PAD
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    atomic_write(Path(out_path), lambda f: f.write(buffer.getvalue()))
    return Path(out_path)


def _fit(image: Image.Image) -> Image.Image:
    image = image.convert("RGB")
    width = max(1, round(image.width * CELL / image.height))
    return image.resize((width, CELL), Image.Resampling.LANCZOS)


def _shorten(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    while len(text) > 3 and draw.textlength(text, font=font) > width:
        text = text[:-4] + "..."
    return text
