"""Training loops (single process and torchrun/DDP) and the pieces they share (``common``)."""
