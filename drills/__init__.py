"""Fault drills: b24sync's processes, a real PostgreSQL and b24emu over HTTP, under trouble."""
