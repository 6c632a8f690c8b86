"""Version 1 of the REST API; every route names the roles that may call it."""
