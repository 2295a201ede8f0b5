"""Operations: warm-up jobs (one machinery for the API, the CLI and scheduled event warm-ups)."""
