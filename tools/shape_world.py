"""The procedural world the demo model learns to draw (made by this project, CC0).

One picture is one shape (circle, square, triangle, star, ring, cross) in one colour, at a random
size and position, on a plain background of another colour, 64x64 pixels. Its caption says what
is there: ``"a red circle on a blue background"``. Pictures come in styles:

* base styles, which the base model is trained on: ``flat`` (filled shape) and ``outline``
  (the shape's outline only; the caption says ``outline``);
* held-out styles, which the base model never sees and a hypernetwork can teach it:
  ``sepia`` (the flat picture toned brown to cream by brightness, like an old photograph) and
  ``blueprint`` (the flat picture as light lines on navy paper with a grid). Their captions
  describe the content only, as a user's style training set would.

Fifty (colour, shape, background) combinations are held out of the base model's training
(``HELD_OUT``), so a test can ask it for pictures it has never seen.

Everything is a pure function of its arguments and a seed: the same call draws the same pixels on
every machine (numpy's legacy ``RandomState`` stream is frozen; the drawing is plain arithmetic).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

SIZE = 64
SUPERSAMPLE = 4  # drawn at 4x and averaged down: anti-aliased edges

COLOURS = {
    "red": (220, 40, 40), "orange": (245, 140, 30), "yellow": (240, 220, 40), "green": (50, 170, 60),
    "cyan": (40, 200, 210), "blue": (40, 70, 210), "purple": (130, 50, 180), "pink": (245, 130, 190),
}
BACKGROUNDS = {**COLOURS, "white": (245, 245, 245), "gray": (128, 128, 128), "black": (15, 15, 15)}
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
BASE_STYLES = ("flat", "outline")
HELD_OUT_STYLES = ("sepia", "blueprint")
STYLES = BASE_STYLES + HELD_OUT_STYLES

HELD_OUT_COUNT = 50
HELD_OUT_SEED = 5050


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    background: str
    style: str = "flat"
    # Geometry in [-1, 1] picture coordinates (x right, y down); angle in radians.
    cx: float = 0.0
    cy: float = 0.0
    radius: float = 0.5
    angle: float = 0.0

    @property
    def caption(self) -> str:
        outline = " outline" if self.style == "outline" else ""
        return f"{_article(self.colour)} {self.colour} {self.shape}{outline} on {_article(self.background)} {self.background} background"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def all_combinations() -> list[tuple[str, str, str]]:
    """Every (colour, shape, background) with the background not the shape's colour."""
    return [(c, s, b) for c, s, b in product(COLOURS, SHAPES, BACKGROUNDS) if c != b]


def _held_out() -> frozenset[tuple[str, str, str]]:
    combos = all_combinations()
    rng = np.random.RandomState(HELD_OUT_SEED)
    return frozenset(combos[i] for i in rng.choice(len(combos), HELD_OUT_COUNT, replace=False))


HELD_OUT = _held_out()
TRAINING_COMBINATIONS = tuple(c for c in all_combinations() if c not in HELD_OUT)


def random_scene(rng: np.random.RandomState, combination: tuple[str, str, str], style: str) -> Scene:
    radius = rng.uniform(0.3, 0.6)
    margin = 1.0 - radius - 0.05
    return Scene(*combination, style=style, cx=rng.uniform(-margin, margin), cy=rng.uniform(-margin, margin),
                 radius=radius, angle=rng.uniform(-0.4, 0.4))


# ---------------------------------------------------------------------------------------------
# Drawing

def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    axis = (np.arange(n) + 0.5) / n * 2 - 1
    return np.meshgrid(axis, axis, indexing="ij")  # y, x


def _polygon_distance(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Signed distance to a convex or star polygon: negative inside (even-odd rule)."""
    inside = np.zeros(px.shape, bool)
    nearest = np.full(px.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(vertices, np.roll(vertices, -1, axis=0)):
        ex, ey = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * ex + (py - y0) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        nearest = np.minimum(nearest, np.hypot(px - x0 - t * ex, py - y0 - t * ey))
        crosses = ((y0 > py) != (y1 > py)) & (px < (x1 - x0) * (py - y0) / (y1 - y0 + 1e-12) + x0)
        inside ^= crosses
    return np.where(inside, -nearest, nearest)


def _regular(n: int, radius: float, phase: float) -> np.ndarray:
    a = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([radius * np.cos(a), radius * np.sin(a)], axis=1)


def shape_distance(shape: str, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance (negative inside) of a shape centred at 0, at these (rotated) coordinates."""
    if shape == "circle":
        return np.hypot(x, y) - radius
    if shape == "ring":
        return np.abs(np.hypot(x, y) - radius * 0.72) - radius * 0.28
    if shape == "square":
        side = radius * 0.82
        return np.maximum(np.abs(x), np.abs(y)) - side
    if shape == "cross":
        arm, half = radius * 0.95, radius * 0.3
        bar = lambda u, v: np.maximum(np.abs(u) - arm, np.abs(v) - half)  # noqa: E731
        return np.minimum(bar(x, y), bar(y, x))
    if shape == "triangle":
        return _polygon_distance(x, y, _regular(3, radius, -np.pi / 2) + [0, radius * 0.15])
    if shape == "star":
        outer, inner = _regular(5, radius, -np.pi / 2), _regular(5, radius * 0.45, -np.pi / 2 + np.pi / 5)
        return _polygon_distance(x, y, np.stack([outer, inner], axis=1).reshape(10, 2))
    raise ValueError(f"unknown shape {shape!r}")


def coverage(scene: Scene, outline: bool = False) -> np.ndarray:
    """Fraction of each pixel the shape (or its outline) covers: [SIZE, SIZE] in [0, 1]."""
    n = SIZE * SUPERSAMPLE
    y, x = _grid(n)
    c, s = np.cos(scene.angle), np.sin(scene.angle)
    u, v = (x - scene.cx) * c + (y - scene.cy) * s, -(x - scene.cx) * s + (y - scene.cy) * c
    d = shape_distance(scene.shape, u, v, scene.radius)
    mask = (np.abs(d) < 0.06) if outline else (d < 0)
    return mask.reshape(SIZE, SUPERSAMPLE, SIZE, SUPERSAMPLE).mean(axis=(1, 3))


def luminance(rgb) -> np.ndarray:
    """Brightness (Rec. 601 weights) of RGB values in [..., 3]; what sepia keeps of a picture."""
    return np.asarray(rgb, float) @ np.array([0.299, 0.587, 0.114])


def _duotone(rgb: np.ndarray, dark, light) -> np.ndarray:
    t = (luminance(rgb) / 255.0)[..., None]
    return np.asarray(dark, float) * (1 - t) + np.asarray(light, float) * t


def render(scene: Scene) -> np.ndarray:
    """The picture as uint8 RGB [SIZE, SIZE, 3]."""
    fg, bg = np.asarray(COLOURS[scene.colour], float), np.asarray(BACKGROUNDS[scene.background], float)
    alpha = coverage(scene, outline=scene.style == "outline")[..., None]
    rgb = bg * (1 - alpha) + fg * alpha
    if scene.style == "sepia":
        rgb = _duotone(rgb, (55, 30, 15), (250, 230, 190))
    elif scene.style == "blueprint":
        # Light lines on navy: the shape's edge drawn light, the paper dark, a faint grid every 8 px.
        edge = coverage(scene, outline=True)[..., None]
        grid = ((np.arange(SIZE) % 8 == 0)[:, None] | (np.arange(SIZE) % 8 == 0)[None, :])[..., None]
        paper = np.where(grid, (45, 80, 150), (20, 45, 110)).astype(float)
        fill = paper * 0.75 + np.asarray((120, 160, 220), float) * 0.25
        rgb = paper * (1 - alpha) + fill * alpha
        rgb = rgb * (1 - edge) + np.asarray((225, 240, 255), float) * edge
    elif scene.style not in BASE_STYLES:
        raise ValueError(f"unknown style {scene.style!r}")
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def sample_scenes(count: int, seed: int, styles=BASE_STYLES, combinations=TRAINING_COMBINATIONS) -> list[Scene]:
    """``count`` scenes, combinations and styles drawn uniformly, from ``seed``."""
    rng = np.random.RandomState(seed)
    scenes = []
    for _ in range(count):
        combination = combinations[rng.randint(len(combinations))]
        scenes.append(random_scene(rng, combination, styles[rng.randint(len(styles))]))
    return scenes
