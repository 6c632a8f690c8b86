"""Steps 2 and 5, report to regulators: the filings due and their packs (filing), and what
happened to each once sent (submission)."""
