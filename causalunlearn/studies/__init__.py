"""Many runs: output folders of runs and sweeps (more of the study layer moves here)."""
