"""Parsers of DFT codes' outputs into hotham.BlockOperator (installed as hotham.parsers)."""
