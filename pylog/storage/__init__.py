"""The storage engine: segments (segment.py), one partition's log (log.py), recovery
(loader.py), checkpoints (checkpoint.py), file names (files.py), group commit
(flusher.py), and the read paths (reader.py)."""
