"""Beat schedules and scheduled event warm-ups."""
