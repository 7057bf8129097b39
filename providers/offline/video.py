"""Offline video: the video prompt, and a short clip of the prompt's sample picture with a sun crossing it."""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any

from providers.offline.images import add_sun, backdrop
from providers.offline.sampling import Sampler


def sample_video_prompt(s: Sampler) -> dict[str, Any]:
    """A VideoPrompt for an 8-second clip about the topic (or the company), 16:9 unless asked otherwise."""
    title = str(s.context.get("topic_title") or s.company)
    return {
        "prompt": f"Sample short video about {title}: slow camera pan over an office"[:2000],
        "duration_seconds": 8,
        "aspect_ratio": str(s.context.get("aspect_ratio") or "16:9"),
    }


def load_encoder() -> None:
    """Imports what rendering needs: a renderer process runs this first, so that its first video is not slower."""
    import numpy  # noqa: F401

    try:
        import imageio.v2  # noqa: F401
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # render_video falls back to a GIF
        pass


def render_video(prompt: str, width: int, height: int, seconds: int, fps: int = 10) -> tuple[bytes, str]:
    """An H.264 MP4 through imageio-ffmpeg's bundled binary; an animated GIF if ffmpeg is unavailable."""
    import numpy as np

    still = backdrop(prompt, width, height)  # drawn once; each frame is a copy with the sun moved on
    frames = []
    for i in range(seconds * fps):
        picture = still.copy()
        add_sun(picture, i / max(1, seconds * fps - 1))
        frames.append(picture)
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=1000 // fps, loop=0)
        return buffer.getvalue(), "image/gif"
    handle, path = tempfile.mkstemp(suffix=".mp4")
    os.close(handle)
    try:
        writer = imageio.get_writer(
            path,
            format="FFMPEG",  # type: ignore[arg-type]
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=2,
            output_params=["-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        try:
            for picture in frames:
                writer.append_data(np.asarray(picture))
        finally:
            writer.close()
        with open(path, "rb") as file:
            return file.read(), "video/mp4"
    finally:
        os.unlink(path)
