"""After the fact, export: what compliance takes away (write) and checks offline (verify)."""
