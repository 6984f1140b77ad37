"""The indexer's writers use the repo's one atomic-write helper (kept importable here for old callers)."""
from mme5.atomic import atomic_open, fsync_dir, remove_stale_temps, replace_folder, write_atomic

__all__ = ["atomic_open", "fsync_dir", "remove_stale_temps", "replace_folder", "write_atomic"]
