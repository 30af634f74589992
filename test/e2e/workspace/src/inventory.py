"""Stock levels per warehouse, kept in memory."""
from collections import defaultdict

DEFAULT_WAREHOUSE = "north-1"
LOW_STOCK_THRESHOLD = 5

_stock = defaultdict(int)


def restock(item_id, quantity, warehouse=DEFAULT_WAREHOUSE):
    if quantity <= 0:
        raise ValueError("quantity must be positive")
    _stock[(warehouse, item_id)] += quantity
    return _stock[(warehouse, item_id)]


def take(item_id, quantity, warehouse=DEFAULT_WAREHOUSE):
    key = (warehouse, item_id)
    if _stock[key] < quantity:
        raise LookupError(f"only {_stock[key]} of {item_id} in {warehouse}")
    _stock[key] -= quantity
    return _stock[key]


def low_stock(warehouse=DEFAULT_WAREHOUSE):
    return sorted(item for (wh, item), n in _stock.items() if wh == warehouse and n < LOW_STOCK_THRESHOLD)
