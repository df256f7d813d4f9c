"""The token job (`observer token run`): the one issuer of every account's tokens."""
