"""Hosts and the bus between them: host-qualified sources, rosters, shards, transport."""
