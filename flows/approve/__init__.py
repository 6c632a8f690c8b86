"""Step 2b, approve: the gate a named person opens, and the runbook on-call staff follow."""
