"""Storage engines: record.py (metadata, clock), engine.py (the interface), memory.py,
device.py (log-structured file store) and layout.py (its bytes on disk)."""
