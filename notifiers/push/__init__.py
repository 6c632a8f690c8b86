"""Push notifications: Firebase Cloud Messaging and Web Push behind one notifier."""
