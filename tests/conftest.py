
import torch

# Tests are small; one thread keeps them fast and deterministic beside other work on 2 cores.
torch.set_num_threads(1)

