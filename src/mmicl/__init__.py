"""mmicl: a reproduction of "Dissecting Multimodal In-Context Learning" (arXiv 2601.20796)."""

__version__ = "0.1.0"
