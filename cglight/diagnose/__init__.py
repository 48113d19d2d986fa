"""``cglight diagnose``: whether a model's Hessian-matching terms carry information its forces do not."""
