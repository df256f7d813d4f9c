"""The KIS simulator: synthetic market, protocol-faithful server, fault injection."""
