"""Helpers with no model code: file I/O, the process rank, the machine description, the
thread's signal stack (signal_stack)."""
from .dist import is_rank0, rank, world_size
from .io import (atomic_write, atomic_write_json, atomic_write_text, dict_table, file_digest,
                 file_md5, file_sha256, format_value, markdown_table, redirect_fd, utc_now)
from .machine import cpu_model, gpu_name, machine_info

__all__ = ["is_rank0", "rank", "world_size", "atomic_write", "atomic_write_json",
           "atomic_write_text", "dict_table", "file_digest", "file_md5", "file_sha256",
           "format_value", "markdown_table", "redirect_fd", "utc_now", "cpu_model", "gpu_name", "machine_info"]
