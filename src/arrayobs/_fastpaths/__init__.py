"""Backend-specific (min, max) reductions, each imported only by the branch of
``arrayobs._reduce`` that has already recognised its backend."""
