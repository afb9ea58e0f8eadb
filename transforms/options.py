"""Options of the pure transform and dedup stages, as frozen dataclasses built by the app."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import SynshardError

ResizeMode = Literal["shorter", "longer", "center-crop", "none"]
OutputFormat = Literal["jpeg", "webp", "png"]
KeepOriginal = Literal["never", "if-fits"]
LabelConflictPolicy = Literal["drop", "keep"]
NearConflictPolicy = Literal["keep", "drop"]

RESIZE_MODES = ("shorter", "longer", "center-crop", "none")
OUTPUT_FORMATS = ("jpeg", "webp", "png")


@dataclass(frozen=True)
class ResizeSpec:
    mode: ResizeMode = "shorter"
    size: int = 256

    @classmethod
    def parse(cls, text: str) -> "ResizeSpec":
        """`shorter:256`, `longer:512`, `center-crop:224` or `none`."""
        mode, _, size = text.strip().partition(":")
        if mode == "none" and not size:
            return cls("none", 0)
        if mode not in RESIZE_MODES or mode == "none" or not size.isdigit() or int(size) <= 0:
            raise SynshardError(
                f"bad resize {text!r}: use shorter:N, longer:N, center-crop:N or none"
            )
        return cls(mode, int(size))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return "none" if self.mode == "none" else f"{self.mode}:{self.size}"


@dataclass(frozen=True)
class TransformOptions:
    resize: ResizeSpec = ResizeSpec()
    upscale: bool = False  # never upscale by default
    format: OutputFormat = "jpeg"
    quality: int = 90
    keep_original: KeepOriginal = "if-fits"  # keep source bytes (metadata stripped) if they fit
    draft: bool = True  # JPEG DCT-domain downscaled decoding when it saves work
    min_size: int = 32  # shorter side, in source pixels
    max_aspect: float = 10.0  # longer / shorter side
    max_pixels: int = 89_478_485  # header-claimed pixels above this: decompression bomb

    def __post_init__(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise SynshardError(f"bad format {self.format!r}: use one of {OUTPUT_FORMATS}")
        if not 1 <= self.quality <= 100:
            raise SynshardError(f"bad quality {self.quality}: use 1..100")
        if self.keep_original not in ("never", "if-fits"):
            raise SynshardError(f"bad keep_original {self.keep_original!r}: never or if-fits")
        if self.min_size < 0:
            raise SynshardError(f"bad min_size {self.min_size}: use 0 or more (pixels)")
        if not self.max_aspect >= 1.0:
            raise SynshardError(f"bad max_aspect {self.max_aspect}: use 1 or more")
        if self.max_pixels < 1:
            raise SynshardError(f"bad max_pixels {self.max_pixels}: use 1 or more (pixels)")


@dataclass(frozen=True)
class DedupOptions:
    label_conflict: LabelConflictPolicy = "drop"  # exact copies under different synsets
    # Near duplicates: phash Hamming distance at most near_radius (None: off). 6 is the default
    # measured in docs/phash.md: it catches re-saves, JPEG q30-q95, downscales, blur and +-10%
    # brightness, while unrelated photographs were never closer than 14.
    near_radius: int | None = 6
    near_conflicts: NearConflictPolicy = "keep"  # near pairs across synsets: list, or drop
    # From this many accepted rows a build on Ray runs its near-duplicate join as Ray tasks over
    # every CPU of the cluster (the same pairs, docs/phash.md); below it, or in a local build
    # (no Ray), in the driver's process. 0: always on Ray, when the build runs on Ray. Does not
    # change the release's bytes.
    near_parallel_above: int = 300_000

    def __post_init__(self) -> None:
        if self.label_conflict not in ("drop", "keep"):
            raise SynshardError(f"bad label_conflict {self.label_conflict!r}: drop or keep")
        if self.near_conflicts not in ("keep", "drop"):
            raise SynshardError(f"bad near_conflicts {self.near_conflicts!r}: keep or drop")
        if self.near_radius is not None and not 0 <= self.near_radius <= 12:
            # Exact search cost grows as 2^radius (docs/phash.md); past 12 it is impractical,
            # and unrelated photographs are already 14 bits apart.
            raise SynshardError(f"bad near_radius {self.near_radius}: 0..12, or none to turn off")
        if self.near_parallel_above < 0:
            raise SynshardError(f"bad near_parallel_above {self.near_parallel_above}: use 0 or "
                                "more (rows; 0: always on Ray)")
