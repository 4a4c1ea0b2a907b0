"""OpenMX: .scfout (binary H, S), .out, input .dat and .Band files."""
