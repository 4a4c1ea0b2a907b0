"""Structure generators and DFT workflows (installed as hotham.workflows)."""
