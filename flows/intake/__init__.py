"""Before step 1, intake: alerts from monitoring and reports from the public become
suspected or declared incidents, once."""
