"""Tables of cases, their timeline, and the notification outbox (declared by the cases capability)."""
