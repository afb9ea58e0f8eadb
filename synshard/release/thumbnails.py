"""Small JPEG thumbnails of stored images, for the report and the explorer."""
from __future__ import annotations

import io

THUMBNAIL_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError)


def jpeg_thumbnail(data: bytes, side: int, quality: int = 80) -> bytes:
    """A JPEG whose longer side is at most `side` (draft decoding towards it).

    Raises one of THUMBNAIL_ERRORS when `data` cannot be decoded; callers decide what that means.
    """
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (side, side))
            im = im.convert("RGB")  # type: ignore[assignment]  # an Image, no longer a file
            im.thumbnail((side, side))
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality)
    except Image.DecompressionBombError as exc:
        raise ValueError(str(exc)) from None
    return buf.getvalue()
