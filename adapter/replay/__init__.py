"""Replay: stored or filed traffic run again, compared with what it produced before."""
