"""EPCIS 2.0 named queries and their subscriptions: webhooks journaled in the database and
delivered at least once by a worker of each API process, and WebSocket streams."""
