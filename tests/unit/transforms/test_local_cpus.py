"""The local CPU count a build sizes its workers by: affinity, and the cgroup v2 CPU quota."""
from __future__ import annotations

from synshard.transforms import neardup


def _quota(tmp_path, text: str) -> int | None:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return neardup._cgroup_quota(str(path))


def test_a_cgroup_quota_is_rounded_up_to_whole_cpus(tmp_path):
    assert _quota(tmp_path, "400000 100000\n") == 4
    assert _quota(tmp_path, "150000 100000\n") == 2
    assert _quota(tmp_path, "5000 100000\n") == 1


def test_no_quota_or_no_cgroup_file_means_no_cap(tmp_path):
    assert _quota(tmp_path, "max 100000\n") is None
    assert _quota(tmp_path, "garbled\n") is None
    assert neardup._cgroup_quota(str(tmp_path / "absent")) is None


def test_the_quota_caps_the_affinity_mask(monkeypatch):
    monkeypatch.setattr(neardup.os, "sched_getaffinity", lambda pid: set(range(64)))
    monkeypatch.setattr(neardup, "_cgroup_quota", lambda: 4)
    assert neardup.local_cpus() == 4
    monkeypatch.setattr(neardup, "_cgroup_quota", lambda: None)
    assert neardup.local_cpus() == 64
