"""The watcher's process tree: roots still alive (same start time) and all their descendants."""
from synshard.builder.reaper import tree


def test_tree_follows_descendants_and_ignores_reused_pids():
    table = {10: (1, 100), 11: (10, 101), 12: (11, 102), 20: (1, 200), 30: (12, 300)}
    assert tree({10: 100}, table) == {10: 100, 11: 101, 12: 102, 30: 300}
    assert tree({10: 999}, table) == {}  # pid 10 now belongs to another process
    assert tree({11: 101, 40: 400}, table) == {11: 101, 12: 102, 30: 300}  # 40 has exited
