"""Offline images: the image prompt, and a PNG that draws the prompt on a gradient under a "SAMPLE" banner."""

from __future__ import annotations

import hashlib
import io
import textwrap
from typing import Any

from providers.offline.sampling import Sampler


def sample_image_prompt(s: Sampler) -> dict[str, Any]:
    """An ImagePrompt about the topic (or the company) in the asked aspect ratio (default 1:1)."""
    title = str(s.context.get("topic_title") or s.company)
    return {
        "prompt": f"Sample flat illustration about {title}, bright colors, no text"[:2000],
        "aspect_ratio": str(s.context.get("aspect_ratio") or "1:1"),
        "alt_text": f"Sample illustration about {title}"[:500],
    }


def palette(prompt: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    digest = hashlib.sha256(prompt.encode()).digest()
    top = (40 + digest[0] % 120, 40 + digest[1] % 120, 80 + digest[2] % 150)
    bottom = (digest[3] % 90, digest[4] % 90, 30 + digest[5] % 100)
    return top, bottom


def frame(prompt: str, width: int, height: int, progress: float | None = None) -> Any:
    """One picture (a PIL image); with `progress` in 0..1, a sun crossing it from left to right (for video)."""
    picture = backdrop(prompt, width, height)
    if progress is not None:
        add_sun(picture, progress)
    return picture


def backdrop(prompt: str, width: int, height: int) -> Any:
    """The still part of a picture: a gradient with the banner and the prompt. Built by Pillow's C code (a linear
    gradient resized, text drawn once), so that rendering holds the GIL for short stretches only: the worker's
    event loop keeps running while a thread renders."""
    from PIL import Image, ImageDraw, ImageFont

    top, bottom = palette(prompt)
    # A 1-pixel-wide column from `top` to `bottom`, stretched to the picture: no per-row Python loop.
    ramp = Image.linear_gradient("L").resize((1, max(1, height)))
    column = Image.merge(
        "RGB",
        [ramp.point(lambda v, a=a, b=b: round(a + (b - a) * v / 255)) for a, b in zip(top, bottom, strict=True)],
    )
    image = column.resize((width, height), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    unit = min(width, height)
    title_size, body_size = max(10, unit // 16), max(9, unit // 22)
    title_font = ImageFont.load_default(size=title_size)
    body_font = ImageFont.load_default(size=body_size)
    margin = max(8, unit // 20)
    draw.text((margin, margin), "SAMPLE - offline provider", fill=(255, 255, 255), font=title_font)
    chars = max(10, int((width - 2 * margin) / (body_size * 0.55)))
    max_lines = max(1, (height - 3 * margin) // (body_size + 6) - 2)
    y = margin * 2 + title_size
    for line in textwrap.wrap(" ".join(prompt.split()), width=chars)[:max_lines]:
        draw.text((margin, y), line, fill=(255, 255, 255), font=body_font)
        y += body_size + 6
    return image


def add_sun(picture: Any, progress: float) -> None:
    """The sun at `progress` (0..1) of its way across the picture, drawn onto it."""
    from PIL import ImageDraw

    width, height = picture.size
    radius = min(width, height) // 8
    x = round(radius + (width - 2 * radius) * progress)
    ImageDraw.Draw(picture).ellipse(
        [x - radius, height // 2 - radius, x + radius, height // 2 + radius], fill=(255, 200, 60)
    )


def draw_png(prompt: str, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    frame(prompt, width, height).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
