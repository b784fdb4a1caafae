"""The layers, one file per family as in ``torch.nn.modules``."""
