"""Helpers of ``scoder.train``: resumable runs with M exported checkpoints (``checkpoints``)."""
