"""Electronic structure from real-space blocks: H(k), S(k), eigenproblems, bands, DOS, states."""
