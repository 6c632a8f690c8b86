"""Twilio: SMS and calls (senders), and its signed status callbacks (status parser)."""
