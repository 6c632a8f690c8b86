"""Telling the staff: paging services and chat, beside the email and SMS the watchdog
sends on-call (flows/watchdog.py). One module per provider, each speaking that provider's
wire format; :mod:`~notifiers.oncall.delivery` posts with retries for every one of them."""
