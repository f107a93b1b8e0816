"""The fault cases of ``benchmarks/faults.py``, one module per kind of fault, and what they share."""
