"""Shared test settings."""

import torch

# The tests use tiny models: one intra-op thread is faster, and immune to oversubscription when
# other processes share the CPU.
torch.set_num_threads(1)
