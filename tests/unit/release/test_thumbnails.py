import io

import pytest
from PIL import Image

from synshard.release.thumbnails import THUMBNAIL_ERRORS, jpeg_thumbnail


def test_thumbnail_is_bounded_jpeg():
    buf = io.BytesIO()
    Image.new("RGB", (640, 300), (200, 10, 10)).save(buf, "PNG")
    with Image.open(io.BytesIO(jpeg_thumbnail(buf.getvalue(), 96))) as im:
        assert im.format == "JPEG" and max(im.size) == 96 and im.size[1] == 45


def test_undecodable_bytes_raise_a_declared_error():
    with pytest.raises(THUMBNAIL_ERRORS):
        jpeg_thumbnail(b"not an image", 96)
