"""Step 1, assess: who is affected (import: readers, population, subjects), who can be
reached, and who must be told what by when (assessment)."""
