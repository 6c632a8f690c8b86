"""Step 3, notify: the ledger queued, shards claiming batches (dispatch), provider reports
reaching the timeline (progress)."""
