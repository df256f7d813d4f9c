"""Tools around the product: simulator, demo, benches, load generator.

The harness may import anything (`observer`, `workers`, `bus`); nothing imports it. Its
commands (`observer demo`, `observer sim`, `observer bench ...`) come from the entry points
``observer.commands``, like the workers'.
"""
