"""Step 4, announce: whether a public announcement is required (decision) and publishing it
(publication)."""
