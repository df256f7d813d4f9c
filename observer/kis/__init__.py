"""The only code that talks to KIS: endpoints, schemas, parsing, auth, REST, WebSocket, masters."""
