"""The transform stage: candidates (original bytes) in, records or rejections out, one per row.

`transform_batch` is the only entry point the pipeline needs. Per image: header checks (empty, not
an image, decompression bomb, too small, aspect) -> resize plan -> scaled decode -> EXIF
orientation -> sRGB RGB -> resize/crop -> encode (or keep the metadata-stripped original) -> boxes
-> perceptual hash (vectorised over the batch). Every expected failure is a `Rejected` that becomes
a row with `stage` and `reason`; nothing is dropped and nothing raises out of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from .boxes import transform_boxes
from .colour import is_srgb, to_rgb
from .decode import Header, check_geometry, decode, open_header
from .encode import encode_image, strip_metadata
from .heap import keep_heap
from .options import TransformOptions
from .phash import grey32, phash_batch
from .rejection import Rejected
from .resize import Plan, apply_plan, decode_size, plan_resize
from .schema import TRANSFORMED_SCHEMA, make_key, sha256_hex

# ImageOps.exif_transpose's table: EXIF orientation -> the transpose that shows the image upright.
ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass
class Output:
    """One transformed image, before it becomes a row."""

    image: bytes
    format: str
    width: int
    height: int
    orig_width: int
    orig_height: int
    orig_format: str
    bboxes: list[list[float]] | None
    ops: str
    grey: np.ndarray  # 32x32 luma thumbnail, hashed for the whole batch at once


def transform_batch(candidates: pa.Table, opts: TransformOptions) -> pa.Table:
    """CANDIDATE_SCHEMA rows -> TRANSFORMED_SCHEMA rows, same count and order.

    The process keeps the C heap's freed image buffers for the next image (`heap.keep_heap`)."""
    keep_heap()
    rows = [_transform_row(row, opts) for row in candidates.to_pylist()]
    done = [i for i, row in enumerate(rows) if row["reason"] is None]
    if done:
        hashes = phash_batch(np.stack([rows[i].pop("_grey") for i in done]))
        for i, value in zip(done, hashes.tolist()):
            rows[i]["phash"] = value
    return pa.Table.from_pylist(rows, schema=TRANSFORMED_SCHEMA)


def _transform_row(row: dict[str, Any], opts: TransformOptions) -> dict[str, Any]:
    out: dict[str, Any] = {name: None for name in TRANSFORMED_SCHEMA.names}
    for name in ("source", "synset", "split", "license", "attribution"):
        out[name] = row.get(name)
    data = row.get("data")
    if data is not None:
        out["sha256"] = sha256_hex(data)
        if row.get("synset"):
            out["key"] = make_key(row["synset"], out["sha256"])
    if row.get("reason") is not None or data is None:
        return _reject(out, "ingest", row.get("reason") or "no data")
    if not row.get("synset"):
        return _reject(out, "validate", "no synset")
    try:
        result = transform_image(data, row.get("bboxes"), opts)
    except Rejected as rejected:
        return _reject(out, rejected.stage, rejected.reason)
    out.update({k: v for k, v in vars(result).items() if k != "grey"})
    out["_grey"] = result.grey
    return out


def _reject(out: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    out["stage"], out["reason"] = stage, reason
    return out


def transform_image(
    data: bytes, bboxes: list[list[float]] | None, opts: TransformOptions
) -> Output:
    """One image through every step; raises `Rejected` for bad input."""
    header = open_header(data, opts.max_pixels)
    check_geometry(header.width, header.height, opts.min_size, opts.max_aspect)
    plan = plan_resize(*header.oriented_size, opts.resize, opts.upscale)
    target = decode_size(plan, header.orientation) if opts.draft else None
    image = decode(data, header, target)
    ops = ["frame0"] if header.animated else []
    if header.orientation != 1:
        image = image.transpose(ORIENT[header.orientation])
        ops.append("exif-rotate")
    try:
        image, colour_ops = to_rgb(image, header.icc)
    except ValueError as err:  # a mode PIL cannot convert (LAB, HSV, ...)
        raise Rejected("decode", f"unsupported mode {image.mode}: {err}") from None
    ops += colour_ops
    image = apply_plan(image, plan)  # RGB, or RGBX from the fast decoder (encode_image takes both)
    ops += (["resize"] if plan.resizes else []) + (["crop"] if plan.crops else [])
    encoded, fmt = _output_bytes(data, header, plan, image, opts, ops)
    return Output(
        image=encoded,
        format=fmt,
        width=image.size[0],
        height=image.size[1],
        orig_width=header.width,
        orig_height=header.height,
        orig_format=header.format,
        bboxes=transform_boxes(bboxes, header.orientation, (header.width, header.height), plan),
        ops=",".join(ops),
        grey=grey32(image),
    )


def _output_bytes(
    data: bytes, header: Header, plan: Plan, image: Image.Image, opts: TransformOptions,
    ops: list[str],
) -> tuple[bytes, str]:
    """The metadata-stripped original when it already fits, else a fresh encode."""
    if _original_fits(data, header, plan, opts, ops):
        stripped = strip_metadata(data, header.format)
        if stripped is not None:
            ops.append("original")
            return stripped, header.format
    ops.append("encode")
    return encode_image(image, opts.format, opts.quality), opts.format


def _original_fits(
    data: bytes, header: Header, plan: Plan, opts: TransformOptions, ops: list[str]
) -> bool:
    """Keep the source bytes only if nothing but metadata would change."""
    return (
        opts.keep_original == "if-fits"
        and header.format == opts.format
        and header.format in ("jpeg", "png")
        and not ops  # no frame selection, rotation or colour conversion happened
        and header.image.mode == "RGB"
        and not plan.resizes
        and not plan.crops
        and (header.icc is None or is_srgb(header.icc))
        and (header.format != "png" or data[24:26] == b"\x08\x02")  # 8-bit truecolour
    )
