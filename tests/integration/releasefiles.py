"""What "byte-identical release" means in the tests: every file of a release (local folder)
except build.json (run statistics) and DATASHEET.md (derived, dated), the manifest without its
creation time."""
from __future__ import annotations

import json
from pathlib import Path

NOT_CONTENT = ("build.json", "DATASHEET.md")


def release_bytes(root: Path) -> dict[str, bytes]:
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
             if p.is_file() and p.name not in NOT_CONTENT}
    manifest = json.loads(files.pop("manifest.json"))
    manifest.pop("created")
    files["manifest.json"] = json.dumps(manifest, sort_keys=True).encode()
    return files
