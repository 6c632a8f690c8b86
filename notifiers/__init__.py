"""Channel adapters behind one protocol (``base.Notifier``), sandbox or live.

Each provider has a sender and, where it reports delivery later, a parser of its status
callbacks (``twilio.status``): the API imports only those parsers. ``factory`` chooses the
adapter the settings ask for.
"""
