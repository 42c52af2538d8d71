"""Input sources for the producer."""
from stream.sources.files import FileFormatError, FileRecord, detect_format, read_csv, read_feed, read_file, read_jsonl, read_records

__all__ = ["FileFormatError", "FileRecord", "detect_format", "read_csv", "read_feed", "read_file", "read_jsonl", "read_records"]
