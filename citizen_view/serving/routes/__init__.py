"""The service's routers, one per subject; `serving/app.py` assembles them."""
