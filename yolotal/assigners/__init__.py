"""Label assigners. Each returns a result dataclass holding every intermediate tensor."""
