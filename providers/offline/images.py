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
    from PIL import Image, ImageDraw, ImageFont

    top, bottom = palette(prompt)
    image = Image.new("RGB", (width, height), top)
    draw = ImageDraw.Draw(image)
    for y in range(0, height, 4):
        t = y / max(1, height - 1)
        color = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.rectangle([0, y, width, y + 4], fill=color)
    unit = min(width, height)
    if progress is not None:
        radius = unit // 8
        x = round(radius + (width - 2 * radius) * progress)
        draw.ellipse([x - radius, height // 2 - radius, x + radius, height // 2 + radius], fill=(255, 200, 60))
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


def draw_png(prompt: str, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    frame(prompt, width, height).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
