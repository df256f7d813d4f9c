"""The readiness job (`observer readiness run`): the 08:10 pre-market check per account."""
