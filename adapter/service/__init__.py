"""The service edge: MLLP and HTTP listeners, the handler they share, workers, forwarding, metrics.

Every wire rule has one home here; the pure core (ingest, classify, emit) knows none of them.
"""
