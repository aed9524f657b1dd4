"""The 1-Wire adapter: owserver's devices as paths (docs/adapters.md, "The 1-Wire adapter")."""
