"""Step 6, close: the response complete, contact details purged on schedule, the timeline
kept."""
